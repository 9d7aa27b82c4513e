"""The scorer's consumer loop: one Kafka transaction per micro-batch (exactly once), or at least once.

Exactly once (``stream.guarantee=exactly_once``, the default), per micro-batch:
consume up to ``batch_max_events`` (waiting at most ``batch_max_wait_ms``) -> ``begin_transaction``
-> produce predictions, dead letters and payload chunks -> ``send_offsets_to_transaction`` (the
input offsets past the batch) -> ``commit_transaction``. A reader with ``read_committed`` sees all of
a batch's records or none; a scorer killed mid-batch leaves an open transaction that the restarted
scorer's ``init_transactions`` (same ``transactional.id``: the pod name) aborts, and the batch is
consumed again from the committed offsets. If a transaction must abort (a broker error), the
consumer rewinds to the committed offsets and the batch is scored again.

At least once: produce, wait for every delivery, then commit the offsets; a crash between the two
repeats the batch's records.

Static membership (``group.instance.id`` = the pod name): a restarted scorer gets its partitions back
at once, without waiting for the session timeout or moving the other members' partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlstack.adapters import kafka
from mlstack.serving.stream import metrics as m
from mlstack.serving.stream.batch import BatchContext, BatchResult, score_batch
from mlstack.serving.stream.dlq import DlqReason, Rejection, dead_letter
from mlstack.serving.stream.models import ModelWatcher
from mlstack.serving.stream.records import InEvent, OutRecord, from_message

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

    from mlstack.serving.stream.router import Routing

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    input_topic: str
    group_id: str
    instance_id: str
    exactly_once: bool = True
    batch_max_events: int = 2000
    batch_max_wait_ms: float = 10.0
    transaction_timeout_ms: int = 60_000


def score_safely(events: list[InEvent], routing: Routing, ctx: BatchContext, now_ns: int) -> BatchResult:
    """``score_batch``, and if it fails as a whole, event by event: a bug meets one event, not a partition."""
    try:
        return score_batch(events, routing, ctx, now_ns)
    except Exception:
        log.exception("scoring a batch of %d events failed; scoring them one at a time", len(events))
    total = BatchResult([])
    for event in events:
        try:
            one = score_batch([event], routing, ctx, now_ns)
        except Exception as exc:
            rejection = Rejection(
                reason=DlqReason.MODEL_ERROR, field="value", rule="model_error", message=str(exc)[:500]
            )
            one = BatchResult([dead_letter(event, rejection, ctx.dlq_topic, ctx.dlq_value_bytes)])
            one.dead[DlqReason.MODEL_ERROR] += 1
        total.records.extend(one.records)
        total.scored += one.scored
        total.rows += one.rows
        total.dead.update(one.dead)
        total.variants.update(one.variants)
    return total


def next_offsets(events: list[InEvent]) -> list[TopicPartition]:
    """The offsets to commit after a batch: one past the last event of each partition."""
    from confluent_kafka import TopicPartition

    last: dict[tuple[str, int], int] = {}
    for event in events:
        key = (event.topic, event.partition)
        if event.offset >= last.get(key, -1):
            last[key] = event.offset
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


class StreamLoop:
    """Consumes, scores and publishes until ``stop`` is set; one routing per micro-batch."""

    def __init__(
        self, access: kafka.KafkaAccess, config: LoopConfig, ctx: BatchContext, watcher: ModelWatcher
    ):
        self.access, self.config, self.ctx, self.watcher = access, config, ctx, watcher
        self.stop = threading.Event()
        self.model = watcher.model
        self.batches = 0
        self._lag_at = 0.0
        self._routing_key: tuple[str, str | None, int] | None = None

    def _show_routing(self, routing: Routing) -> None:
        m.ROUTING.clear()
        share = routing.percent if routing.challenger is not None else 0
        m.ROUTING.labels(self.model, routing.champion.version, "champion").set(100 - share)
        if routing.challenger is not None:
            m.ROUTING.labels(self.model, routing.challenger.version, "challenger").set(share)

    def _clients(self) -> tuple[Producer, Consumer]:
        cfg = self.config
        producer_options = {
            "linger.ms": 2,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
        if cfg.exactly_once:
            producer_options["transaction.timeout.ms"] = cfg.transaction_timeout_ms
            transactional_id = f"{cfg.group_id}.{cfg.instance_id}"
        else:
            transactional_id = None
        producer = kafka.producer(self.access, transactional_id, **producer_options)
        if cfg.exactly_once:
            # fences a previous incarnation with this id and aborts the transaction it left open
            producer.init_transactions(cfg.transaction_timeout_ms / 1000)
        consumer = kafka.consumer(
            self.access,
            cfg.group_id,
            cfg.instance_id,
            **{"fetch.wait.max.ms": max(1, int(cfg.batch_max_wait_ms)), "queued.min.messages": 20_000},
        )
        return producer, consumer

    def run(self) -> None:
        producer, consumer = self._clients()
        consumer.subscribe([self.config.input_topic], on_assign=self._assigned, on_revoke=self._revoked)
        log.info(
            "consuming %s as %s (group %s, %s)",
            self.config.input_topic,
            self.config.instance_id,
            self.config.group_id,
            "exactly once" if self.config.exactly_once else "at least once",
        )
        try:
            while not self.stop.is_set():
                self._one_batch(producer, consumer)
        finally:
            consumer.close()  # a static member does not leave the group: its restart takes its partitions back
            producer.flush(10)

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [f"{p.topic}/{p.partition}" for p in partitions])

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", [f"{p.topic}/{p.partition}" for p in partitions])

    def _one_batch(self, producer: Producer, consumer: Consumer) -> None:
        routing = self.watcher.current()
        if routing is None:  # no model to score with: consume nothing rather than dead-letter everything
            self.stop.wait(0.1)
            return
        if routing.key() != self._routing_key:
            self._routing_key = routing.key()
            self._show_routing(routing)
        messages = consumer.consume(self.config.batch_max_events, self.config.batch_max_wait_ms / 1000)
        self._report_lag(consumer)
        if not messages:
            producer.poll(0)
            return
        started = time.monotonic()
        events = []
        for message in messages:
            error = message.error()
            if error is not None:  # a consumer-level error, not a record: nothing to score
                log.warning("consumer: %s", error.str())
                continue
            events.append(from_message(message))
        if not events:
            return
        now_ns = time.time_ns()
        result = score_safely(events, routing, self.ctx, now_ns)
        if self.config.exactly_once:
            committed = self._transact(producer, consumer, result.records, events)
        else:
            committed = self._at_least_once(producer, consumer, result.records, events)
        if not committed:
            return
        self.batches += 1
        done_ns = time.time_ns()
        self._count(result, events, started, done_ns)

    def _produce(
        self,
        producer: Producer,
        records: list[OutRecord],
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        for record in records:
            while True:
                try:
                    producer.produce(
                        record.topic,
                        record.value,
                        record.key,
                        # list is invariant: our (str, bytes) pairs are what the stub's
                        # list[tuple[str, str | bytes | None]] accepts (confluent-kafka==2.16.1)
                        headers=record.headers,  # type: ignore[arg-type]
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    producer.poll(0.05)

    def _transact(
        self, producer: Producer, consumer: Consumer, records: list[OutRecord], events: list[InEvent]
    ) -> bool:
        from confluent_kafka import KafkaException

        try:
            producer.begin_transaction()
            self._produce(producer, records)
            producer.send_offsets_to_transaction(
                next_offsets(events),
                consumer.consumer_group_metadata(),
                self.config.transaction_timeout_ms / 1000,
            )
            self._commit(producer)
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise  # fenced by a newer incarnation, or unrecoverable: exit, the pod restarts
            log.warning("transaction aborted (%s); the batch is consumed again", error.str())
            m.ABORTS.labels(self.model).inc()
            producer.abort_transaction(self.config.transaction_timeout_ms / 1000)
            self._rewind(consumer, events)
            return False

    def _commit(self, producer: Producer) -> None:
        from confluent_kafka import KafkaException

        while True:
            try:
                producer.commit_transaction(self.config.transaction_timeout_ms / 1000)
                return
            except KafkaException as exc:
                if exc.args[0].retriable():
                    continue
                raise

    def _at_least_once(
        self, producer: Producer, consumer: Consumer, records: list[OutRecord], events: list[InEvent]
    ) -> bool:
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        self._produce(producer, records, delivered)
        producer.flush()
        if failures:
            log.warning(
                "%d records were not delivered (%s); the batch is consumed again", len(failures), failures[0]
            )
            self._rewind(consumer, events)
            return False
        consumer.commit(offsets=next_offsets(events), asynchronous=False)
        return True

    def _rewind(self, consumer: Consumer, events: list[InEvent]) -> None:
        """Seek every partition of the batch back to its committed offset (or the start)."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        partitions = [TopicPartition(tp.topic, tp.partition) for tp in next_offsets(events)]
        for tp in consumer.committed(partitions, timeout=30):
            consumer.seek(
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            )

    def _count(self, result: BatchResult, events: list[InEvent], started: float, done_ns: int) -> None:
        model = self.model
        for variant, count in result.variants.items():
            m.EVENTS.labels(model, "scored", variant).inc(count)
        for reason, count in result.dead.items():
            m.EVENTS.labels(model, "dead_letter", "none").inc(count)
            m.DEAD_LETTERS.labels(model, reason.value).inc(count)
        m.BATCH_EVENTS.labels(model).observe(len(events))
        m.BATCH_SECONDS.labels(model).observe(time.monotonic() - started)
        stamps = np.array([e.timestamp_ms for e in events if e.timestamp_ms], dtype=np.float64)
        if stamps.size:
            latency = m.LATENCY.labels(model)
            for seconds in (done_ns / 1e6 - stamps) / 1000:
                latency.observe(max(seconds, 0.0))

    def _report_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < 5:
            return
        self._lag_at = now
        try:
            assigned = consumer.assignment()
            for position in consumer.position(assigned):
                _low, high = consumer.get_watermark_offsets(position, cached=True)
                if position.offset >= 0 and high >= 0:
                    m.LAG.labels(position.topic, str(position.partition)).set(max(high - position.offset, 0))
        except Exception as exc:  # lag is a metric: never stop scoring for it
            log.debug("lag not measured: %s", exc)
