"""``mlstack stream`` wired together: names from settings, topics, the model, the two loops, /metrics.

The scorer loop runs in the main thread; the registry watcher and the payload store writer run in
background threads of the same process (the writer only when ``stream.store_writer``). SIGTERM
finishes the micro-batch in flight, then stops.

``mlstack stream-store`` (``run_store_writer``) is the payload store writer alone, what the chart
runs as a second container of the scorer's pod: the writer's Parquet flushes hold the GIL for tens
of milliseconds, and in the scorer's process they set its latency tail (bench/results/stream.md).
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType

from mlstack.adapters import kafka
from mlstack.core import names
from mlstack.core.errors import UsageError
from mlstack.core.settings import Settings
from mlstack.serving.sink.events import TimeWindow
from mlstack.serving.stream.batch import BatchContext
from mlstack.serving.stream.loop import LoopConfig, StreamLoop
from mlstack.serving.stream.models import ModelWatcher
from mlstack.serving.stream.store_writer import StoreWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StreamNames:
    """Every name the scorer uses, with the settings' defaults filled in."""

    model: str
    inference_service: str
    input_topic: str
    output_topic: str
    dlq_topic: str
    payload_topic: str
    group_id: str
    instance_id: str
    store: str


def resolve(settings: Settings) -> StreamNames:
    """Names from ``settings.stream``, defaults derived from the model; UsageError for a bad name."""
    cfg = settings.stream
    model = cfg.model or settings.training.model_name
    try:
        names.check_label(model, "stream.model")
        service = names.check_label(cfg.inference_service or model, "stream.inference_service")
    except names.NameError_ as exc:
        raise UsageError(exc.message) from None
    instance = cfg.instance_id or socket.gethostname()
    return StreamNames(
        model=model,
        inference_service=service,
        input_topic=cfg.input_topic or f"{model}.features",
        output_topic=cfg.output_topic or f"{model}.predictions",
        dlq_topic=cfg.dlq_topic or f"{model}.dlq",
        payload_topic=cfg.payload_topic or f"{model}.payloads",
        group_id=cfg.group_id or f"mlstack-stream-{model}",
        instance_id=instance,
        store=cfg.store or settings.payload_store,
    )


def _first_routing(watcher: ModelWatcher, stop: threading.Event) -> None:
    """Block until the model has a routing: the local cache at once, else the registry (retried)."""
    if watcher.warm_start():
        return
    waited = 0.0
    while not stop.is_set():
        try:
            watcher.refresh()
        except Exception as exc:
            log.warning("cannot load %s from the registry yet: %s", watcher.model, exc)
        if watcher.current() is not None:
            return
        if waited >= 30 and int(waited) % 30 == 0:
            log.warning(
                "still no champion for %s after %.0f s; set its 'champion' alias", watcher.model, waited
            )
        stop.wait(1.0)
        waited += 1.0


def _store_writer(settings: Settings, access: kafka.KafkaAccess, resolved: StreamNames) -> StoreWriter:
    """The payload writer of this scorer: its own group, and ``<instance>.store`` as static member."""
    cfg = settings.stream
    return StoreWriter(
        access,
        resolved.payload_topic,
        resolved.store,
        f"{resolved.group_id}.store",
        f"{resolved.instance_id}.store",
        cfg.store_flush_rows,
        cfg.store_flush_seconds,
    )


def run_store_writer(settings: Settings) -> int:
    """The payload store writer alone, until SIGTERM/SIGINT (then it writes what it holds); exit code.

    It ensures the payload topic as the scorer does (same partitions; created when
    ``stream.create_topics``, else waited for), so the two containers of a pod start in any order.
    """
    cfg = settings.stream
    resolved = resolve(settings)
    access = kafka.KafkaAccess.from_config(cfg.kafka)
    kafka.ensure_topics(
        kafka.admin(access),
        [kafka.TopicSpec(resolved.payload_topic, cfg.topic_partitions, cfg.topic_replication_factor)],
        create=cfg.create_topics,
    )
    writer = _store_writer(settings, access, resolved)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: writing the rows held, then stopping", signum)
        writer.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if cfg.store_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(cfg.store_metrics_port, cfg.metrics_host)
    log.info(
        "store writer ready: %s -> %s (every %d rows or %.1f s)",
        resolved.payload_topic,
        resolved.store,
        cfg.store_flush_rows,
        cfg.store_flush_seconds,
    )
    writer.run()
    return 0


def run_stream(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    cfg = settings.stream
    resolved = resolve(settings)
    access = kafka.KafkaAccess.from_config(cfg.kafka)
    stop = threading.Event()
    loop_holder: list[StreamLoop] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight", signum)
        stop.set()
        for item in loop_holder:
            item.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    client = kafka.admin(access)
    topics = [resolved.input_topic, resolved.output_topic, resolved.dlq_topic, resolved.payload_topic]
    kafka.ensure_topics(
        client,
        [kafka.TopicSpec(t, cfg.topic_partitions, cfg.topic_replication_factor) for t in topics],
        create=cfg.create_topics,
    )
    watcher = ModelWatcher(
        settings, resolved.model, cfg.registry_poll_seconds, settings.canary.initial_percent
    )
    _first_routing(watcher, stop)
    if stop.is_set():
        return 0
    watcher.start()
    if cfg.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(cfg.metrics_port, cfg.metrics_host)
    writer, writer_thread = None, None
    if cfg.store_writer:
        writer = _store_writer(settings, access, resolved)
        writer_thread = threading.Thread(target=writer.run, name="store-writer", daemon=True)
        writer_thread.start()
    ctx = BatchContext(
        output_topic=resolved.output_topic,
        dlq_topic=resolved.dlq_topic,
        payload_topic=resolved.payload_topic,
        inference_service=resolved.inference_service,
        namespace=cfg.namespace,
        max_event_bytes=cfg.max_event_bytes,
        max_rows=settings.serving.max_batch_rows,
        dlq_value_bytes=cfg.dlq_value_bytes,
        window=TimeWindow(
            max_age_seconds=settings.sink.max_event_age_hours * 3600,
            max_future_seconds=settings.sink.max_future_seconds,
        ),
    )
    loop = StreamLoop(
        access,
        LoopConfig(
            input_topic=resolved.input_topic,
            group_id=resolved.group_id,
            instance_id=resolved.instance_id,
            exactly_once=cfg.guarantee == "exactly_once",
            batch_max_events=cfg.batch_max_events,
            batch_max_wait_ms=cfg.batch_max_wait_ms,
            transaction_timeout_ms=cfg.transaction_timeout_ms,
        ),
        ctx,
        watcher,
    )
    loop_holder.append(loop)
    if stop.is_set():
        loop.stop.set()
    routing = watcher.current()
    log.info("scorer ready in %.2f s: %s", time.monotonic() - started, routing.describe() if routing else "")
    # the loop allocates many short-lived objects per batch: keep the collector off the objects of
    # start-up (modules, the models), which it would otherwise walk again and again
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        loop.run()
    finally:
        watcher.stop()
        if writer is not None and writer_thread is not None:
            writer.stop.set()
            writer_thread.join(timeout=60)
    return 0
