"""The payload sink's state: dedup, pairing, flushing to the payload-log store, crash recovery.

An accepted event goes to the write-ahead log first (``mlstack.serving.sink.wal``); only then is it paired and
only then does the HTTP layer answer 2xx. Pairs become rows at flush time (``store_io.write_batch``:
the predictor's parser, columns named and typed by the model version's contract from
``mlstack.serving.contracts``, looked up in the background as soon as a response names its
version) every ``flush_rows`` rows or ``flush_seconds``. Events that cannot become rows (no partner
within ``pair_timeout_seconds``, a response that is an error, a request and response that
disagree) are kept as JSON lines under ``<store>/unpaired/``; a pair the store refuses is kept
under ``<store>/quarantine/`` with the reason: nothing acknowledged is dropped.

Memory is bounded by what the process holds, not by body bytes alone: every event held (a half
waiting for its partner, or a pair waiting for its flush) costs its body's bytes plus
``EVENT_OVERHEAD`` (the Python objects and index entries around it, measured), and at most
``max_pending_events`` are held. Beyond either bound a new half is refused with ``Backpressure``
(503 + Retry-After; KServe's logger retries); the partner of a waiting half is still taken up to a
quarter more, since it completes a pair that the next flush frees.

Exactly once: before a flush writes, it records its ids and the partitions it writes in an intent
file; after, it appends the ids to ``done.ids``. On restart, ids of a leftover intent that those
partitions already hold count as done, the WAL is replayed for everything else, and ``done.ids``
makes later duplicates of a ``ce-id`` no-ops for ``dedup_seconds`` (24 h by default); older ids are
forgotten (``WriteAheadLog.forget_before``). A window is bounded in count too: beyond
``max_dedup_ids`` the oldest ids are forgotten first (about 300 bytes each with its origin: at the
default 1,000,000, about 300 MB), so a busy sink's memory and ``done.ids`` stay bounded whatever its
rate. ``mlstack_sink_dedup_window_seconds`` says how far back duplicates are refused right now.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink import store_io
from mlstack.serving.sink.events import Event
from mlstack.serving.sink.feedback import EarlyLabels, write_adopted
from mlstack.serving.sink.store_io import PAIR, partition_of
from mlstack.serving.sink.wal import WriteAheadLog

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Bytes a held event costs beyond its body: the Event object, its strings, and its entries in the
# pending/accepted/first_seen/unflushed/WAL-segment indexes. Measured with tracemalloc on 200,000
# unpaired 19-byte requests in one process: RSS grew 938 bytes per event (a 218 KB body: 220 KB).
EVENT_OVERHEAD = 1100
FINAL_CONTRACT_WAIT = 10.0  # within the pod's 30 s termination grace period
PARTNER_ALLOWANCE = 1.25  # a partner completes a pair: taken until the bounds times this
DEDUP_SLACK = 1.1  # done.ids is rewritten when the ids exceed max_dedup_ids by this factor


class Backpressure(Exception):
    """The held-events bound is reached: answer 503 with Retry-After, store nothing."""


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
        max_pending_events: int = 200_000,
        early_labels: EarlyLabels | None = None,
        contract_wait_seconds: float = 30.0,
        max_dedup_ids: int = 1_000_000,
    ):
        self.store = store
        self.dedup_seconds = dedup_seconds  # how long a stored ce-id is remembered (and refused again)
        self.max_dedup_ids = max_dedup_ids  # how many at most: the oldest are forgotten first
        self._pruned_at = time.time()
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.pair_timeout = pair_timeout_seconds
        self.contracts = contracts if contracts is not None else ContractCache(lookup=None)
        self.contract_wait = contract_wait_seconds
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_events = max_pending_events
        self.early = early_labels if early_labels is not None else EarlyLabels()
        self.wal = WriteAheadLog(wal_dir)
        self.done: dict[str, float] = {}  # stored ce-id -> when (unix seconds)
        self.origins: dict[str, str] = {}  # ce-id -> "<model>/<version>/<rows>" (for /feedback)
        self.accepted: set[tuple[str, str]] = set()
        self.inflight: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.pending: dict[str, dict[str, Event]] = {}
        self.pending_bytes = 0  # held by halves waiting for a partner (body + EVENT_OVERHEAD each)
        self.held_bytes = 0  # held by every event in memory: waiting halves, ready and flushing pairs
        self.held_events = 0
        self.first_seen: dict[str, float] = {}
        self.ready: list[PAIR] = []
        self.ready_rows = 0
        self.dead: list[dict[str, Any]] = []
        self.adopted: list[
            dict[str, Any]
        ] = []  # early labels whose pair completed, written by the next flush
        self.unflushed_since: dict[str, float] = {}  # ce-id -> when first accepted (monotonic)
        self.flush_error: str | None = None  # the last flush's error; None while flushes succeed
        self._asked: set[tuple[str, str]] = set()  # versions whose contract was asked for
        self._flush_lock = asyncio.Lock()
        self._flush_task: asyncio.Task[int] | None = None
        self._stored = m.EVENTS.labels("request", "stored"), m.EVENTS.labels("response", "stored")
        m.READY.set(1)

    # ------------------------------------------------------------------ recovery

    def recover(self) -> int:
        """Rebuild state from the WAL after a restart; returns the number of events replayed."""
        from mlstack.serving.sink.recovery import recover

        return recover(self)

    # ------------------------------------------------------------------ accepting

    def known(self, event_id: str) -> tuple[str, str, int] | None:
        """(model, version, rows) of a logged ce-id the sink still remembers, else None."""
        origin = self.origins.get(event_id)
        if origin is None:
            return None
        model, version, rows = origin.rsplit("/", 2)
        return unquote(model), version, int(rows)

    def _room(self, cost: int, partner: bool) -> None:
        scale = PARTNER_ALLOWANCE if partner else 1.0
        if self.held_bytes + cost > self.max_pending_bytes * scale:
            raise Backpressure(
                f"{self.held_bytes} bytes of events are held in memory (cap sink.max_pending_bytes="
                f"{self.max_pending_bytes}, each event counted as its body plus {EVENT_OVERHEAD} bytes); "
                "retry later"
            )
        if self.held_events >= self.max_pending_events * scale:
            raise Backpressure(
                f"{self.held_events} events are held in memory (cap sink.max_pending_events="
                f"{self.max_pending_events}); retry later"
            )

    async def accept(self, event: Event) -> str:
        """Make ``event`` durable and pair it; returns 'stored' or 'duplicate'.

        Raises Backpressure when the event would exceed the held-events bounds.
        """
        key = (event.id, event.kind)
        if event.id in self.done or key in self.accepted:
            m.EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        if key in self.inflight:  # same event again while the first copy is being written
            await asyncio.shield(self.inflight[key])
            m.EVENTS.labels(event.kind, "duplicate").inc()
            return "duplicate"
        self._room(event.size + EVENT_OVERHEAD, event.id in self.pending)
        if event.kind == "response":  # its contract is looked up in the background, during the fsync
            self._prefetch(event)
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            await self.wal.append(event.id, event.to_record())
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; duplicates waiting on it re-raise
            raise
        finally:
            self.inflight.pop(key, None)
        future.set_result(None)
        self.accepted.add(key)
        self._add(event)
        self._stored[event.kind == "response"].inc()
        if event.time_replaced:
            m.TIME_REPLACED.inc()
        if self.ready_rows >= self.flush_rows:
            self.schedule_flush()
        return "stored"

    def _prefetch(self, response: Event) -> None:
        version = (response.model_name or response.inference_service, response.model_version or "unknown")
        if version not in self._asked:
            if len(self._asked) > 10_000:
                self._asked.clear()
            self._asked.add(version)
            self.contracts.prefetch(*version)

    def _add(self, event: Event) -> None:
        self.unflushed_since.setdefault(event.id, time.monotonic())
        cost = event.size + EVENT_OVERHEAD
        self.held_bytes += cost
        self.held_events += 1
        halves = self.pending.get(event.id)
        if halves is None or event.kind in halves:
            self.pending.setdefault(event.id, {})[event.kind] = event
            self.pending_bytes += cost
            self.first_seen.setdefault(event.id, time.monotonic())
        else:
            other = halves.pop("request" if event.kind == "response" else "response")
            del self.pending[event.id]
            del self.first_seen[event.id]
            self.pending_bytes -= other.size + EVENT_OVERHEAD
            request, response = (other, event) if event.kind == "response" else (event, other)
            if response.is_error:
                self._dead_letter([request, response], "model_error")
            else:
                model = response.model_name or response.inference_service
                self.origins[event.id] = (
                    f"{quote(model, safe='')}/{response.model_version or 'unknown'}/{request.rows}"
                )
                self.ready.append((event.id, request, response))
                self.ready_rows += max(request.rows, 1)
                for label in self.early.release(event.id):
                    self.adopted.append(label)
        m.PENDING.set(len(self.pending))
        m.PENDING_BYTES.set(self.pending_bytes)

    def _release(self, *events: Event) -> None:
        self.held_bytes -= sum(e.size + EVENT_OVERHEAD for e in events)
        self.held_events -= len(events)

    def _dead_letter(self, events: list[Event], reason: str, folder: str = "unpaired") -> None:
        (
            m.QUARANTINED.inc(len(events))
            if folder == "quarantine"
            else m.UNPAIRED.labels(reason).inc(len(events))
        )
        for event in events:
            self.dead.append(event.to_record() | {"reason": reason, "folder": folder})

    def hold_early_labels(self, items: list[dict[str, Any]], received_at: pd.Timestamp) -> int:
        """Labels of ids not logged yet: held until their pair completes (they are orphans already)."""
        adopt = [i for i in items if self.known(i["request_id"]) is not None]  # paired meanwhile
        self.adopted += [i | {"received_at": received_at} for i in adopt]
        rest = [i for i in items if self.known(i["request_id"]) is None]
        return len(adopt) + self.early.hold(rest, received_at)

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
        m.HELD_BYTES.set(self.held_bytes)
        m.HELD_EVENTS.set(self.held_events)
        self.contracts.reprobe()
        state = self.contracts.registry
        m.REGISTRY_UP.set(-1 if state.up is None else int(state.up))
        m.REGISTRY_FAILURES.set(state.failures)

    def _expire(self, everything: bool = False) -> None:
        now = time.monotonic()
        for event_id, seen in list(self.first_seen.items()):
            if everything or now - seen > self.pair_timeout:
                halves = self.pending.pop(event_id)
                del self.first_seen[event_id]
                self.pending_bytes -= sum(h.size + EVENT_OVERHEAD for h in halves.values())
                self._dead_letter(list(halves.values()), "no_partner")
        self.early.expire()
        m.PENDING.set(len(self.pending))
        m.PENDING_BYTES.set(self.pending_bytes)

    async def flush(self, everything: bool = False, final: bool = False) -> int:
        """Write ready rows (and kept events, and labels that waited for them) to the store; returns rows written.

        ``final`` (at shutdown): write every ready pair, waiting for contract lookups under way;
        ``everything`` also moves halves still waiting for a partner to ``unpaired/``.
        """
        async with self._flush_lock:
            self._expire(everything)
            batch, self.ready = self._due(everything or final)
            self.ready_rows = sum(max(r.rows, 1) for _, r, _ in self.ready)
            dead, self.dead = self.dead, []
            adopted, self.adopted = self.adopted, []
            if not batch and not dead and not adopted:
                return 0
            self.wal.rotate()
            ids = sorted({event_id for event_id, _, _ in batch} | {record["id"] for record in dead})
            partitions = sorted({partition_of(request, response) for _, request, response in batch})
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            intent = self.wal.write_intent(int(time.time() * 1000), ids, partitions, day)
            started = time.perf_counter()
            # lookups under way are waited for by leaving their pairs in ready; the last flush (at
            # shutdown) cannot leave them, so it waits for them, at most FINAL_CONTRACT_WAIT seconds
            last = everything or final
            until = time.monotonic() + (min(self.contract_wait, FINAL_CONTRACT_WAIT) if last else 0.0)
            try:
                written = await asyncio.to_thread(
                    store_io.write_batch, self.store, batch, dead, self.contracts, until, self.flush_rows
                )
            except Exception as exc:
                m.FLUSH_FAILURES.inc()
                m.READY.set(0)
                self.flush_error = f"{type(exc).__name__}: {exc}"[:500]
                stored = await asyncio.to_thread(store_io.stored_ids, self.store, ids, partitions, day)
                self.wal.mark_done(
                    sorted(stored), intent, origins=self.origins
                )  # never repeat a partial write
                self.done.update(dict.fromkeys(stored, time.time()))
                self.ready = [p for p in batch if p[0] not in stored] + self.ready
                self.ready_rows = sum(max(r.rows, 1) for _, r, _ in self.ready)
                self.dead = [r for r in dead if r["id"] not in stored] + self.dead
                self.adopted = adopted + self.adopted
                for _, request, response in batch:
                    if request.id in stored:
                        self._release(request, response)
                raise
            self.flush_error = None
            m.READY.set(1)
            m.FLUSH_SECONDS.observe(time.perf_counter() - started)
            now = time.time()
            self.wal.mark_done(ids, intent, now, self.origins)
            self.done.update(dict.fromkeys(ids, now))
            for event_id in ids:
                self.unflushed_since.pop(event_id, None)
            for _, request, response in batch:
                self._release(request, response)
            for record in dead:
                self.held_bytes -= int(record.get("size") or 0) + EVENT_OVERHEAD
                self.held_events -= 1
            self.accepted -= {(i, k) for i in ids for k in ("request", "response")}
            self.wal.drop_finished_segments(self.done.keys())
            if (
                now - self._pruned_at > min(600.0, self.dedup_seconds / 10)
                or len(self.done) > self.max_dedup_ids * DEDUP_SLACK
            ):
                self.forget_old_ids(now)
            m.DEDUP_IDS.set(len(self.done))  # every flush: memory grows with it between prunes
            m.ROWS.inc(written)
            await self._write_adopted(adopted, until)
            return written

    def dedup_cutoff(self, now: float) -> float:
        """Ids stored before this are forgotten: older than the window, or beyond ``max_dedup_ids``.

        ``done`` is in the order ids were stored (flushes append, ``done.ids`` is read in file order
        and ``forget_before`` keeps the order), so the last id to forget is found by position,
        without sorting. Ids of one flush share a stamp, so its whole flush goes with it: at most
        ``max_dedup_ids`` stay (ids still in a WAL segment excepted, ``forget_before``).
        """
        cutoff = now - self.dedup_seconds
        excess = len(self.done) - self.max_dedup_ids
        if excess > 0:
            last_forgotten = next(itertools.islice(self.done.values(), excess - 1, None))
            cutoff = max(cutoff, math.nextafter(last_forgotten, math.inf))
        return cutoff

    def forget_old_ids(self, now: float) -> None:
        """Forget the ids ``dedup_cutoff`` names (``done.ids`` rewritten) and update the gauges."""
        self.done = self.wal.forget_before(self.done, self.dedup_cutoff(now), self.origins)
        self._pruned_at = now
        m.DEDUP_IDS.set(len(self.done))
        oldest = next(iter(self.done.values()), None)
        m.DEDUP_WINDOW.set(0.0 if oldest is None else max(0.0, now - oldest))

    def _due(self, everything: bool) -> tuple[list[PAIR], list[PAIR]]:
        """(pairs to write now, pairs left for a later flush): a pair whose version's contract is
        being looked up waits for it, up to ``contract_wait_seconds`` after it was accepted."""
        if everything or not self.ready:
            return self.ready, []
        now = time.monotonic()
        due: list[PAIR] = []
        later: list[PAIR] = []
        for pair in self.ready:
            response = pair[2]
            model = response.model_name or response.inference_service
            waiting = self.contracts.looking_up(model, response.model_version or "unknown")
            young = now - self.unflushed_since.get(pair[0], now) < self.contract_wait
            (later if waiting and young else due).append(pair)
        return due, later

    async def _write_adopted(self, adopted: list[dict[str, Any]], until: float) -> None:
        """Early labels whose pair is stored now: checked like any label, then written to feedback/."""
        if not adopted:
            return
        try:
            written = await asyncio.to_thread(
                write_adopted, self.store, self.known, self.contracts, adopted, until
            )
        except Exception:
            log.exception("could not write %d early labels; the next flush retries", len(adopted))
            self.adopted = adopted + self.adopted
            return
        m.FEEDBACK.labels("joined_late").inc(written)

    def close(self) -> None:
        self.wal.close()
        self.contracts.close()
