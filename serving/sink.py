"""The payload sink's state: dedup, pairing, flushing to the payload-log store, crash recovery.

An accepted event goes to the write-ahead log first (``serving.wal``); only then is it paired and
only then does the HTTP layer answer 2xx. Pairs become rows (``serving.events.pair_rows``) that are
written as Parquet with ``mlstack.core.payload.write_predictions`` every ``flush_rows`` rows or
``flush_seconds``. Events that cannot become rows (no partner within ``pair_timeout_seconds``, a
response that is an error, a request and response that disagree) are kept as JSON lines under
``<store>/unpaired/``: nothing acknowledged is ever dropped.

Exactly once: before a flush writes, it records its ids in an intent file; after, it appends them to
``done.ids``. On restart, ids of a leftover intent that the store already holds count as done, the
WAL is replayed for everything else, and ``done.ids`` makes later duplicates of a ``ce-id`` no-ops
for ``dedup_seconds`` (24 h by default); older ids are forgotten (``WriteAheadLog.forget_before``),
so memory and ``done.ids`` stay bounded by the traffic of one window.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

import orjson
import pandas as pd
import pyarrow as pa
from prometheus_client import Counter, Gauge, Histogram

from mlstack.core import payload, storage
from serving.events import Event, EventError, pair_rows, rows_frame
from serving.wal import WriteAheadLog

log = logging.getLogger(__name__)

EVENTS = Counter("mlstack_sink_events", "CloudEvents received, by kind and outcome", ["kind", "outcome"])
ROWS = Counter("mlstack_sink_rows_written", "Prediction rows written to the payload log")
UNPAIRED = Counter("mlstack_sink_unpaired_events", "Events kept under unpaired/, by reason", ["reason"])
FLUSH_SECONDS = Histogram("mlstack_sink_flush_seconds", "Time to write one flush to the store")
PENDING = Gauge("mlstack_sink_pending_events", "Accepted events waiting for their partner")


class Sink:
    """Accepts events durably and turns pairs into payload-log rows."""

    def __init__(
        self,
        store: str,
        wal_dir: str,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        pair_timeout_seconds: float = 300.0,
        dedup_seconds: float = 86400.0,
    ):
        self.store = store
        self.dedup_seconds = dedup_seconds  # how long a stored ce-id is remembered (and refused again)
        self._pruned_at = time.time()
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.pair_timeout = pair_timeout_seconds
        self.wal = WriteAheadLog(wal_dir)
        self.done: dict[str, float] = {}  # stored ce-id -> when (unix seconds)
        self.accepted: set[tuple[str, str]] = set()
        self.inflight: dict[tuple[str, str], asyncio.Future] = {}
        self.pending: dict[str, dict[str, Event]] = {}
        self.first_seen: dict[str, float] = {}
        self.ready: list[tuple[str, list[dict]]] = []
        self.ready_rows = 0
        self.dead: list[dict] = []
        self._flush_lock = asyncio.Lock()
        self._flush_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ recovery

    def recover(self) -> int:
        """Rebuild state from the WAL after a restart; returns the number of events replayed."""
        self.done = self.wal.done_ids()
        for intent, ids in self.wal.intents():
            stored = self._already_stored(ids)
            log.info(
                "recovering flush %s: %d of %d ids already in the store", intent.name, len(stored), len(ids)
            )
            self.wal.mark_done(sorted(stored), intent)
            self.done.update(dict.fromkeys(stored, time.time()))
        replayed = 0
        for _, record in self.wal.replay():
            event = Event.from_record(record)
            if event.id in self.done or (event.id, event.kind) in self.accepted:
                continue
            self.accepted.add((event.id, event.kind))
            self._add(event)
            replayed += 1
        self.wal.drop_finished_segments(self.done.keys())
        self.done = self.wal.forget_before(self.done, time.time() - self.dedup_seconds)
        log.info("sink recovered: %d ids done, %d events replayed", len(self.done), replayed)
        return replayed

    def _already_stored(self, ids: list[str]) -> set[str]:
        wanted = set(ids)
        found: set[str] = set()
        if storage.exists(storage.join(self.store, "predictions")):
            frame = payload.read_partitioned(
                storage.join(self.store, "predictions"),
                ["inference_service", "model_version", "date", "hour"],
            )
            if frame is not None and not frame.empty:
                found |= wanted & set(frame["request_id"].astype(str))
        found |= wanted & self._dead_lettered_ids()
        return found

    def _dead_lettered_ids(self) -> set[str]:
        root = storage.join(self.store, "unpaired")
        if not storage.exists(root):
            return set()
        fs, path = storage.filesystem(root)
        ids = set()
        for info in fs.get_file_info(storage.pafs.FileSelector(path, recursive=True)):
            if info.is_file and info.path.endswith(".jsonl"):
                with fs.open_input_stream(info.path) as stream:
                    ids |= {orjson.loads(line)["id"] for line in stream.read().splitlines() if line}
        return ids

    # ------------------------------------------------------------------ accepting

    async def accept(self, event: Event) -> str:
        """Make ``event`` durable and pair it; returns 'stored' or 'duplicate'.

        Raises EventError (422) when the event's partner is already here and the two disagree.
        """
        key = (event.id, event.kind)
        if event.id in self.done or key in self.accepted:
            EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        if key in self.inflight:  # same event again while the first copy is being written
            await asyncio.shield(self.inflight[key])
            EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        partner = self.pending.get(event.id, {}).get("response" if event.kind == "request" else "request")
        if partner is not None:
            # its partner is here: refuse (422, nothing stored) a half that cannot belong to it
            request, response = (event, partner) if event.kind == "request" else (partner, event)
            if "error" not in response.body:
                pair_rows(request, response)
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            await self.wal.append(event.to_record())
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; duplicates waiting on it re-raise
            raise
        finally:
            self.inflight.pop(key, None)
        future.set_result(None)
        self.accepted.add(key)
        self._add(event)
        EVENTS.labels(event.kind, "stored").inc()
        if self.ready_rows >= self.flush_rows:
            self.schedule_flush()
        return "stored"

    def _add(self, event: Event) -> None:
        halves = self.pending.setdefault(event.id, {})
        halves[event.kind] = event
        self.first_seen.setdefault(event.id, time.monotonic())
        if len(halves) == 2:
            del self.pending[event.id]
            del self.first_seen[event.id]
            request, response = halves["request"], halves["response"]
            if (
                "error" in response.body
                and "predictions" not in response.body
                and "outputs" not in response.body
            ):
                self._dead_letter([request, response], "model_error")
            else:
                try:
                    rows = pair_rows(request, response)
                    self.ready.append((event.id, rows))
                    self.ready_rows += len(rows)
                except EventError as exc:
                    self._dead_letter([request, response], exc.rule)
        PENDING.set(len(self.pending))

    def _dead_letter(self, events: list[Event], reason: str) -> None:
        UNPAIRED.labels(reason).inc(len(events))
        for event in events:
            self.dead.append(event.to_record() | {"reason": reason})

    # ------------------------------------------------------------------ flushing

    def schedule_flush(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self.flush())

    async def run_periodic_flush(self, stop: asyncio.Event) -> None:
        """Flush every ``flush_seconds`` until ``stop`` is set; a flush under way always finishes."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except Exception:
                log.exception("flush failed; the events stay in the WAL and the next flush retries")

    def _expire(self) -> None:
        now = time.monotonic()
        for event_id, seen in list(self.first_seen.items()):
            if now - seen > self.pair_timeout:
                halves = self.pending.pop(event_id)
                del self.first_seen[event_id]
                self._dead_letter(list(halves.values()), "no_partner")
        PENDING.set(len(self.pending))

    async def flush(self, everything: bool = False) -> int:
        """Write ready rows (and dead letters) to the store; returns rows written."""
        async with self._flush_lock:
            if everything:
                for event_id in list(self.pending):
                    self._dead_letter(list(self.pending.pop(event_id).values()), "no_partner")
                self.first_seen.clear()
            else:
                self._expire()
            batch, self.ready, self.ready_rows = self.ready, [], 0
            dead, self.dead = self.dead, []
            if not batch and not dead:
                return 0
            self.wal.rotate()
            ids = sorted({event_id for event_id, _ in batch} | {record["id"] for record in dead})
            intent = self.wal.write_intent(int(time.time() * 1000), ids)
            started = time.perf_counter()
            try:
                rows = rows_frame([row for _, pair in batch for row in pair]) if batch else None
                await asyncio.to_thread(self._write, rows, dead)
            except Exception:
                self.ready = batch + self.ready
                self.ready_rows = sum(len(f) for _, f in self.ready)
                self.dead = dead + self.dead
                stored = await asyncio.to_thread(self._already_stored, ids)
                self.wal.mark_done(sorted(stored), intent)  # a partial write must not be repeated
                self.done.update(dict.fromkeys(stored, time.time()))
                self.ready = [(i, f) for i, f in self.ready if i not in stored]
                self.dead = [r for r in self.dead if r["id"] not in stored]
                raise
            FLUSH_SECONDS.observe(time.perf_counter() - started)
            now = time.time()
            self.wal.mark_done(ids, intent, now)
            self.done.update(dict.fromkeys(ids, now))
            self.accepted -= {(i, k) for i in ids for k in ("request", "response")}
            self.wal.drop_finished_segments(self.done.keys())
            if now - self._pruned_at > min(600.0, self.dedup_seconds / 10):
                self.done = self.wal.forget_before(self.done, now - self.dedup_seconds)
                self._pruned_at = now
            written = 0 if rows is None else len(rows)
            ROWS.inc(written)
            return written

    def _write(self, rows: pd.DataFrame | None, dead: list[dict]) -> None:
        if rows is not None and not rows.empty:
            try:
                payload.write_predictions(self.store, rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # a column mixing numbers and text (a client sent both): keep it, as text
                payload.write_predictions(self.store, _mixed_as_text(rows))
        if dead:
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            uri = storage.join(self.store, "unpaired", f"date={day}", f"part-{uuid.uuid4().hex}.jsonl")
            storage.write_bytes(uri, b"".join(orjson.dumps(record) + b"\n" for record in dead))

    def close(self) -> None:
        self.wal.close()


def _mixed_as_text(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    for column in out.columns:
        if out[column].dtype == object and column not in payload.META_COLUMNS:
            out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out
