"""Payload topic -> payload store, exactly once: the store, not Kafka, remembers how far it got.

The scorer's transactions put payload rows on the payload topic; this writer reads them with
``read_committed`` (rows of aborted batches never reach it) and writes Parquet with
``mlstack.core.payload.write_predictions``. A file's name is the payload partition's offset range
(``part-<topic>-<partition>-<first>-<last>.parquet``), so writing the same range again overwrites
the same files with the same rows. Per payload partition, a progress file under
``<store>/_stream/<topic>/<partition>.json`` says where writing resumes:

1. before writing range [first, last]: ``{"next": N, "pending": [first, last]}``;
2. the files of the range (one per model version / date / hour directory);
3. after: ``{"next": last + 1}``.

Killed between 1 and 3, the next owner of the partition reads the pending range again, exactly
[first, last] (a committed range never changes), rewrites the same files and goes on: no row is
lost or stored twice. The group's committed offsets are informational (lag), never the resume point.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa

from mlstack.adapters import kafka
from mlstack.core import names, payload, storage
from mlstack.serving.stream import metrics as m
from mlstack.serving.stream.payloads import decode, store_frame

if TYPE_CHECKING:
    from confluent_kafka import Consumer, TopicPartition

log = logging.getLogger(__name__)


@dataclass
class _Partition:
    next: int  # the first offset not yet in the store
    pending: tuple[int, int] | None = None  # a range a killed writer had started: rewrite exactly it
    tables: list[pa.Table] = field(default_factory=list)
    first: int | None = None
    last: int | None = None
    rows: int = 0
    since: float = 0.0


def checked_table(value: bytes) -> pa.Table:
    """A payload record's rows; ValueError when it is not one the scorer could have written."""
    try:
        table = decode(value)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not an Arrow IPC stream: {exc}") from None
    missing = [c for c in payload.META_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"lacks columns {missing}")
    for service in set(table.column("inference_service").to_pylist()):
        names.check_label(str(service), "inference_service")
    for version in set(table.column("model_version").to_pylist()):
        names.check_version(str(version))
    return table


class StoreWriter:
    """Consumes the payload topic and writes its rows to ``store`` in files named by offset range."""

    def __init__(
        self,
        access: kafka.KafkaAccess,
        topic: str,
        store: str,
        group_id: str,
        instance_id: str | None,
        flush_rows: int = 50_000,
        flush_seconds: float = 10.0,
    ):
        self.access, self.topic, self.store = access, topic, store
        self.group_id, self.instance_id = group_id, instance_id
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.partitions: dict[int, _Partition] = {}
        self.stop = threading.Event()
        self.skipped = 0

    def _progress_uri(self, partition: int) -> str:
        return storage.join(self.store, "_stream", self.topic, f"{partition}.json")

    def _read_progress(self, partition: int) -> _Partition:
        uri = self._progress_uri(partition)
        if not storage.exists(uri):
            return _Partition(next=0)
        state = orjson.loads(storage.read_bytes(uri))
        pending = state.get("pending")
        return _Partition(
            next=int(state["next"]), pending=(int(pending[0]), int(pending[1])) if pending else None
        )

    def _write_progress(self, partition: int, state: _Partition) -> None:
        body = {"next": state.next, "pending": list(state.pending) if state.pending else None}
        storage.write_bytes(self._progress_uri(partition), orjson.dumps(body))

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        from confluent_kafka import TopicPartition

        seeks = []
        for tp in partitions:
            state = self._read_progress(tp.partition)
            self.partitions[tp.partition] = state
            start = state.pending[0] if state.pending else state.next
            seeks.append(TopicPartition(tp.topic, tp.partition, start))
            log.info(
                "store writer: %s/%d from offset %d%s",
                tp.topic,
                tp.partition,
                start,
                f" (rewriting pending range {state.pending})" if state.pending else "",
            )
        consumer.assign(seeks)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # unwritten rows stay in Kafka; the next owner resumes from the progress file
            self.partitions.pop(tp.partition, None)

    def run(self) -> None:
        consumer = kafka.consumer(self.access, self.group_id, self.instance_id)
        consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not self.stop.is_set():
                for message in consumer.consume(1000, 0.5):
                    partition, offset = message.partition(), message.offset()
                    if message.error() is None and partition is not None and offset is not None:
                        self._add(consumer, partition, offset, message.value())
                self._flush_due(consumer)
            self._flush_due(consumer)  # stopping: write what is buffered
        finally:
            consumer.close()

    def _add(self, consumer: Consumer, partition: int, offset: int, value: bytes | None) -> None:
        state = self.partitions.get(partition)
        if state is None or offset < (state.pending[0] if state.pending else state.next):
            return  # a partition no longer ours, or a record already stored
        if state.first is None:
            state.first, state.since = offset, time.monotonic()
        state.last = offset
        try:
            table = checked_table(value or b"")
            state.tables.append(table)
            state.rows += table.num_rows
        except ValueError as exc:  # not ours to store; skipping it is deterministic, so replays agree
            self.skipped += 1
            log.warning(
                "store writer: payload record %s/%d/%d skipped: %s", self.topic, partition, offset, exc
            )
        if state.pending is not None and offset >= state.pending[1]:
            self._write(consumer, partition, state, state.pending)  # exactly the range a killed writer began

    def _flush_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        for partition, state in list(self.partitions.items()):
            if state.first is None or state.last is None:
                continue
            if state.pending is not None:
                continue  # written as soon as its last offset arrives (_add)
            if state.rows >= self.flush_rows or now - state.since >= self.flush_seconds or self.stop.is_set():
                self._write(consumer, partition, state, (state.first, state.last))

    def _write(self, consumer: Consumer, partition: int, state: _Partition, span: tuple[int, int]) -> None:
        from confluent_kafka import TopicPartition

        first, last = span
        state.pending = span
        self._write_progress(partition, state)
        name = f"part-{self.topic}-{partition}-{first:020d}-{last:020d}.parquet"
        written = (
            payload.write_predictions(self.store, store_frame(state.tables), part_name=name)
            if state.tables
            else []
        )
        m.STORE_ROWS.labels(self.topic).inc(state.rows)
        m.STORE_FILES.labels(self.topic).inc(len(written))
        log.info(
            "store writer: %s/%d offsets %d-%d: %d rows in %d file(s)",
            self.topic,
            partition,
            first,
            last,
            state.rows,
            len(written),
        )
        self.partitions[partition] = done = _Partition(next=last + 1)
        self._write_progress(partition, done)
        consumer.commit(offsets=[TopicPartition(self.topic, partition, last + 1)], asynchronous=True)
