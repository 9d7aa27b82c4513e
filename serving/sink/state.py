"""The payload sink's state: dedup, pairing, flushing to the payload-log store, crash recovery.

An accepted event goes to the write-ahead log first (``mlstack.serving.sink.wal``); only then is it paired and
only then does the HTTP layer answer 2xx. Pairs become rows at flush time
(``mlstack.serving.pairing.pair_rows``, the predictor's parser, columns named and typed by the model
version's contract from ``mlstack.serving.contracts``) and are written as Parquet with
``mlstack.core.payload.write_predictions`` every ``flush_rows`` rows or ``flush_seconds``. Events
that cannot become rows (no partner within ``pair_timeout_seconds``, a response that is an error, a
request and response that disagree) are kept as JSON lines under ``<store>/unpaired/``; a pair the
store refuses is kept under ``<store>/quarantine/`` with the reason: nothing acknowledged is dropped.

Memory is bounded: halves waiting for a partner may hold at most ``max_pending_bytes``; beyond it a
half whose partner is not here is refused with ``Backpressure`` (503 + Retry-After; KServe's logger
retries).

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
from urllib.parse import quote

import orjson

from mlstack.core import payload, storage
from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink.events import Event, EventError
from mlstack.serving.sink.pairing import (
    instance_count,
    is_model_error,
    pair_rows,
    response_version,
    rows_frame,
)
from mlstack.serving.sink.wal import WriteAheadLog

log = logging.getLogger(__name__)

PAIR = tuple[str, Event, Event]  # (ce-id, request, response)


class Backpressure(Exception):
    """The pending-halves byte cap is reached: answer 503 with Retry-After, store nothing."""


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
        contracts: ContractCache | None = None,
        max_pending_bytes: int = 256 * 1024 * 1024,
    ):
        self.store = store
        self.dedup_seconds = dedup_seconds  # how long a stored ce-id is remembered (and refused again)
        self._pruned_at = time.time()
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.pair_timeout = pair_timeout_seconds
        self.contracts = contracts if contracts is not None else ContractCache(lookup=None)
        self.max_pending_bytes = max_pending_bytes
        self.wal = WriteAheadLog(wal_dir)
        self.done: dict[str, float] = {}  # stored ce-id -> when (unix seconds)
        self.origins: dict[str, str] = {}  # ce-id -> "<model>/<version>/<rows>" (for /feedback)
        self.accepted: set[tuple[str, str]] = set()
        self.inflight: dict[tuple[str, str], asyncio.Future] = {}
        self.pending: dict[str, dict[str, Event]] = {}
        self.pending_bytes = 0
        self.first_seen: dict[str, float] = {}
        self.ready: list[PAIR] = []
        self.ready_rows = 0
        self.dead: list[dict] = []
        self.unflushed_since: dict[str, float] = {}  # ce-id -> when first accepted (monotonic)
        self.flush_error: str | None = None  # the last flush's error; None while flushes succeed
        self._flush_lock = asyncio.Lock()
        self._flush_task: asyncio.Task | None = None
        m.READY.set(1)

    # ------------------------------------------------------------------ recovery

    def recover(self) -> int:
        """Rebuild state from the WAL after a restart; returns the number of events replayed."""
        self.done = self.wal.done_ids(self.origins)
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
        self.done = self.wal.forget_before(self.done, time.time() - self.dedup_seconds, self.origins)
        log.info("sink recovered: %d ids done, %d events replayed", len(self.done), replayed)
        return replayed

    def _already_stored(self, ids: list[str]) -> set[str]:
        wanted = set(ids)
        found: set[str] = set()
        frame = payload.read_partitioned(
            storage.join(self.store, "predictions"), ["inference_service", "model_version", "date", "hour"]
        )
        if frame is not None and not frame.empty and "request_id" in frame.columns:
            found |= wanted & set(frame["request_id"].astype(str))
        return found | (wanted & self._kept_ids())

    def _kept_ids(self) -> set[str]:
        """Ids of events stored as JSON lines (unpaired/ and quarantine/)."""
        ids = set()
        for folder in ("unpaired", "quarantine"):
            root = storage.join(self.store, folder)
            if not storage.exists(root):
                continue
            fs, path = storage.filesystem(root)
            for info in fs.get_file_info(storage.pafs.FileSelector(path, recursive=True)):
                if info.is_file and info.path.endswith(".jsonl") and not info.base_name.startswith("."):
                    with fs.open_input_stream(info.path) as stream:
                        ids |= {orjson.loads(line)["id"] for line in stream.read().splitlines() if line}
        return ids

    # ------------------------------------------------------------------ accepting

    def known(self, event_id: str) -> tuple[str, str, int] | None:
        """(model, version, rows) of a logged ce-id the sink still remembers, else None."""
        origin = self.origins.get(event_id)
        if origin is None:
            return None
        model, version, rows = origin.rsplit("/", 2)
        from urllib.parse import unquote

        return unquote(model), version, int(rows)

    async def accept(self, event: Event) -> str:
        """Make ``event`` durable and pair it; returns 'stored' or 'duplicate'.

        Raises Backpressure when the half would have to wait and the pending byte cap is reached.
        """
        key = (event.id, event.kind)
        if event.id in self.done or key in self.accepted:
            m.EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        if key in self.inflight:  # same event again while the first copy is being written
            await asyncio.shield(self.inflight[key])
            m.EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        partner_waiting = bool(self.pending.get(event.id))
        if not partner_waiting and self.pending_bytes + event.size > self.max_pending_bytes:
            raise Backpressure(
                f"{self.pending_bytes} bytes of events wait for their partner (cap sink.max_pending_bytes="
                f"{self.max_pending_bytes}); retry later"
            )
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
        m.EVENTS.labels(event.kind, "stored").inc()
        if event.time_replaced:
            m.TIME_REPLACED.inc()
        if self.ready_rows >= self.flush_rows:
            self.schedule_flush()
        return "stored"

    def _add(self, event: Event) -> None:
        self.unflushed_since.setdefault(event.id, time.monotonic())
        halves = self.pending.setdefault(event.id, {})
        halves[event.kind] = event
        self.pending_bytes += event.size
        self.first_seen.setdefault(event.id, time.monotonic())
        if len(halves) == 2:
            del self.pending[event.id]
            del self.first_seen[event.id]
            request, response = halves["request"], halves["response"]
            self.pending_bytes -= request.size + response.size
            if is_model_error(response):
                self._dead_letter([request, response], "model_error")
            else:
                rows = instance_count(request.body)
                model, version = response_version(response)
                self.origins[event.id] = f"{quote(model, safe='')}/{version}/{rows}"
                self.ready.append((event.id, request, response))
                self.ready_rows += max(rows, 1)
        m.PENDING.set(len(self.pending))
        m.PENDING_BYTES.set(self.pending_bytes)

    def _dead_letter(self, events: list[Event], reason: str, folder: str = "unpaired") -> None:
        (
            m.QUARANTINED.inc(len(events))
            if folder == "quarantine"
            else m.UNPAIRED.labels(reason).inc(len(events))
        )
        for event in events:
            self.dead.append(event.to_record() | {"reason": reason, "folder": folder})

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
            self.update_gauges()

    def update_gauges(self) -> None:
        m.WAL_BYTES.set(self.wal.bytes_on_disk())
        oldest = min(self.unflushed_since.values(), default=None)
        m.OLDEST_UNFLUSHED.set(0 if oldest is None else time.monotonic() - oldest)

    def _expire(self) -> None:
        now = time.monotonic()
        for event_id, seen in list(self.first_seen.items()):
            if now - seen > self.pair_timeout:
                halves = self.pending.pop(event_id)
                del self.first_seen[event_id]
                self.pending_bytes -= sum(h.size for h in halves.values())
                self._dead_letter(list(halves.values()), "no_partner")
        m.PENDING.set(len(self.pending))
        m.PENDING_BYTES.set(self.pending_bytes)

    async def flush(self, everything: bool = False) -> int:
        """Write ready rows (and kept events) to the store; returns rows written."""
        async with self._flush_lock:
            if everything:
                for event_id in list(self.pending):
                    self._dead_letter(list(self.pending.pop(event_id).values()), "no_partner")
                self.first_seen.clear()
                self.pending_bytes = 0
            else:
                self._expire()
            batch, self.ready, self.ready_rows = self.ready, [], 0
            dead, self.dead = self.dead, []
            if not batch and not dead:
                return 0
            self.wal.rotate()
            ids = sorted({event_id for event_id, _, _ in batch} | {record["id"] for record in dead})
            intent = self.wal.write_intent(int(time.time() * 1000), ids)
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(self._write, batch, dead)
            except Exception as exc:
                m.FLUSH_FAILURES.inc()
                m.READY.set(0)
                self.flush_error = f"{type(exc).__name__}: {exc}"[:500]
                self.ready = batch + self.ready
                self.ready_rows = sum(max(instance_count(r.body), 1) for _, r, _ in self.ready)
                self.dead = dead + self.dead
                stored = await asyncio.to_thread(self._already_stored, ids)
                self.wal.mark_done(
                    sorted(stored), intent, origins=self.origins
                )  # never repeat a partial write
                self.done.update(dict.fromkeys(stored, time.time()))
                self.ready = [p for p in self.ready if p[0] not in stored]
                self.dead = [r for r in self.dead if r["id"] not in stored]
                raise
            self.flush_error = None
            m.READY.set(1)
            m.FLUSH_SECONDS.observe(time.perf_counter() - started)
            now = time.time()
            self.wal.mark_done(ids, intent, now, self.origins)
            self.done.update(dict.fromkeys(ids, now))
            for event_id in ids:
                self.unflushed_since.pop(event_id, None)
            self.accepted -= {(i, k) for i in ids for k in ("request", "response")}
            self.wal.drop_finished_segments(self.done.keys())
            if now - self._pruned_at > min(600.0, self.dedup_seconds / 10):
                self.done = self.wal.forget_before(self.done, now - self.dedup_seconds, self.origins)
                self._pruned_at = now
            m.ROWS.inc(written)
            return written

    # ------------------------------------------------------------------ writing (in a worker thread)

    def _write(self, batch: list[PAIR], dead: list[dict]) -> int:
        """Rows of each model version, then kept events; a pair the store refuses is quarantined."""
        groups: dict[tuple[str, str, str], list[PAIR]] = {}
        for pair in batch:
            model, version = response_version(pair[2])
            groups.setdefault((pair[1].inference_service, model, version), []).append(pair)
        kept = list(dead)
        written = 0
        for (_, model, version), pairs in groups.items():
            contract = self.contracts.get(model, version)
            rows: list[dict] = []
            good: list[PAIR] = []
            for pair in pairs:
                try:
                    pair_rows_, dropped = pair_rows(pair[1], pair[2], contract)
                except EventError as exc:
                    kept += self._records(pair, exc.rule, "unpaired")
                    m.UNPAIRED.labels(exc.rule).inc(2)
                    continue
                for feature, count in dropped.items():
                    m.INVALID_VALUES.labels(feature).inc(count)
                rows += pair_rows_
                good.append(pair)
            if not rows:
                continue
            try:
                payload.write_predictions(self.store, rows_frame(rows, contract))
                written += len(rows)
            except Exception as exc:  # one bad pair must not block its whole flush
                log.warning("a flush of %d rows failed (%s); writing pair by pair", len(rows), exc)
                stored = self._already_stored([p[0] for p in good])
                for pair in good:
                    if pair[0] in stored:
                        continue
                    try:
                        one, _ = pair_rows(pair[1], pair[2], contract)
                        payload.write_predictions(self.store, rows_frame(one, contract))
                        written += len(one)
                    except Exception as pair_exc:
                        reason = f"store_refused: {type(pair_exc).__name__}: {pair_exc}"[:300]
                        kept += self._records(pair, reason, "quarantine")
                        m.QUARANTINED.inc(2)
        for folder in ("unpaired", "quarantine"):
            records = [
                {k: v for k, v in r.items() if k != "folder"} for r in kept if r.get("folder") == folder
            ]
            payload.write_records(self.store, folder, records)
        return written

    @staticmethod
    def _records(pair: PAIR, reason: str, folder: str) -> list[dict]:
        return [event.to_record() | {"reason": reason, "folder": folder} for event in (pair[1], pair[2])]

    def close(self) -> None:
        self.wal.close()
