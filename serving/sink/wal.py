"""The sink's write-ahead log: an event is on disk (fsync'd) before the sink answers 2xx.

Layout under the WAL directory (a local disk; a PVC in the cluster):

- ``segment-<n>.jsonl``: accepted events, one JSON object per line; a new segment starts at
  every flush so finished segments can be deleted once all their events are stored;
- ``done.ids``: ``<id> <unix seconds>[ <origin>]`` of events already written to the store (dedup
  across restarts); the origin (``<model>/<version>/<rows>``, model percent-encoded) is what
  ``/feedback`` checks a label and a row index against. ``forget_before`` rewrites it without the
  ids older than the dedup window, so it and the sink's memory stay bounded;
- ``intent-<n>.json``: ids a flush is about to write; present after a crash mid-flush, so recovery
  can check the store instead of writing those rows twice.

Appends are group-committed: concurrent requests queue their lines, one writer thread writes them
all and calls fdatasync once, then every waiting request is answered (one callback into the event
loop per batch). Durability per event, throughput per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from io import BufferedWriter
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Segmented, fsync'd, group-committed event log plus the set of ids already stored."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._queue: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._writing: set[int] = set()  # segments written to whose ids the loop has not recorded yet
        self.segment_ids: dict[int, set[str]] = {}
        existing = self.segments()
        self.current = (existing[-1] + 1) if existing else 1
        self._handle = self._open(self.current)
        self._handle_number = self.current
        self.segment_ids[self.current] = set()

    # ------------------------------------------------------------------ recovery

    def segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("segment-*.jsonl"))

    def replay(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Records of every earlier segment, oldest first; a torn last line (never acknowledged) is skipped."""
        for number in self.segments():
            if number == self.current:
                continue
            ids = self.segment_ids.setdefault(number, set())
            with open(self.directory / f"segment-{number:08d}.jsonl", "rb") as handle:
                for line in handle:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        log.warning("skipping a torn line in WAL segment %d", number)
                        continue
                    ids.add(record["id"])
                    yield number, record

    def done_ids(self, origins: dict[str, str] | None = None) -> dict[str, float]:
        """Stored ids with the time they were stored; fills ``origins`` (id -> origin) when given.

        A line that does not parse (torn by a crash before its fsync returned) is skipped.
        """
        path = self.directory / "done.ids"
        if not path.exists():
            return {}
        done = {}
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(" ")
            try:
                done[parts[0]] = float(parts[1])
            except (IndexError, ValueError):
                log.warning("skipping a torn line in done.ids: %r", line[:80])
                continue
            if origins is not None and len(parts) > 2:
                origins[parts[0]] = parts[2]
        return done

    def intents(self) -> list[tuple[Path, list[str] | dict[str, Any]]]:
        found = []
        for path in sorted(self.directory.glob("intent-*.json")):
            try:
                found.append((path, orjson.loads(path.read_bytes())))
            except orjson.JSONDecodeError:
                path.unlink()  # torn before its fsync: its flush never started writing
        return found

    # ------------------------------------------------------------------ appends

    async def append(self, event_id: str, record: dict[str, Any]) -> None:
        """Return once ``record`` is fdatasync'd to the current segment."""
        line = orjson.dumps(record) + b"\n"
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._writer is None:
                self._loop = loop
                self._writer = threading.Thread(target=self._write_loop, name="wal-writer", daemon=True)
                self._writer.start()
            self._queue.append((event_id, line, future))
            self._wake.notify()
        await future

    def _write_loop(self) -> None:
        """The writer thread: take everything queued, write it, fdatasync once, answer the batch."""
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch, self._queue = self._queue, []
                if self._handle_number != self.current:  # rotate() asked for a new segment
                    self._handle.close()
                    self._handle = self._open(self.current)
                    self._handle_number = self.current
                number = self._handle_number
                self._writing.add(number)
            error: Exception | None = None
            try:
                self._write_sync(self._handle, b"".join(line for _, line, _ in batch))
            except Exception as exc:  # disk full, I/O error: every waiter fails, none is acknowledged
                log.error("WAL write failed: %s", exc)
                error = exc
            assert self._loop is not None  # set with the writer
            self._loop.call_soon_threadsafe(self._answer, number, batch, error)
            del batch  # the lines must not outlive their answer while this thread waits

    def _answer(
        self, number: int, batch: list[tuple[str, bytes, asyncio.Future[None]]], error: Exception | None
    ) -> None:
        """In the event loop: record which segment holds the batch's ids, then answer its waiters."""
        if error is None:
            self.segment_ids.setdefault(number, set()).update(i for i, _, _ in batch)
        with self._lock:
            self._writing.discard(number)
        for _, _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _open(self, number: int) -> BufferedWriter:
        handle = open(self.directory / f"segment-{number:08d}.jsonl", "ab")
        _fsync_dir(self.directory)
        return handle

    @staticmethod
    def _write_sync(handle: BufferedWriter, data: bytes) -> None:
        handle.write(data)
        handle.flush()
        os.fdatasync(handle.fileno())  # data and size; the segment's directory entry was fsync'd at open

    def rotate(self) -> None:
        """Send events from now on to a new segment (the writer switches before its next write)."""
        with self._lock:
            self.current += 1
        self.segment_ids.setdefault(self.current, set())

    # ------------------------------------------------------------------ flush bookkeeping

    def write_intent(self, number: int, ids: list[str], partitions: list[str], day: str) -> Path:
        """Announce a flush: its ids, the partitions (``isvc/version/date/hour``) it writes, its day."""
        path = self.directory / f"intent-{number:08d}.json"
        with open(path, "wb") as handle:
            handle.write(orjson.dumps({"ids": ids, "partitions": partitions, "day": day}))
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.directory)
        return path

    def mark_done(
        self,
        ids: list[str],
        intent: Path | None = None,
        now: float | None = None,
        origins: dict[str, str] | None = None,
    ) -> None:
        """Record ``ids`` as stored at ``now`` (fsync'd), then drop the intent that announced them."""
        if ids:
            stamp = f" {time.time() if now is None else now:.0f}"
            origins = origins or {}
            lines = "".join(
                event_id + stamp + (f" {origins[event_id]}" if event_id in origins else "") + "\n"
                for event_id in ids
            )
            with open(self.directory / "done.ids", "ab") as handle:
                handle.write(lines.encode())
                handle.flush()
                os.fsync(handle.fileno())
        if intent is not None and intent.exists():
            intent.unlink()

    def forget_before(
        self, done: dict[str, float], cutoff: float, origins: dict[str, str] | None = None
    ) -> dict[str, float]:
        """Rewrite ``done.ids`` without the ids stored before ``cutoff``; returns the ids kept.

        Ids still in a WAL segment are kept whatever their age: a restart replays that segment and
        must still recognise them. Written to a new file, fsync'd and renamed over the old one: a
        crash leaves one or the other.
        """
        live = set().union(*self.segment_ids.values())
        kept = {event_id: stamp for event_id, stamp in done.items() if stamp >= cutoff or event_id in live}
        if len(kept) == len(done):
            return done
        fresh = self.directory / "done.ids.new"
        with open(fresh, "wb") as handle:
            origins = origins if origins is not None else {}
            handle.write(
                "".join(
                    f"{event_id} {stamp:.0f}"
                    + (f" {origins[event_id]}" if event_id in origins else "")
                    + "\n"
                    for event_id, stamp in kept.items()
                ).encode()
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(fresh, self.directory / "done.ids")
        _fsync_dir(self.directory)
        if origins is not None:
            for event_id in [i for i in origins if i not in kept]:
                del origins[event_id]
        return kept

    def bytes_on_disk(self) -> int:
        """Size of the WAL segments (the sink's metric of un-dropped events)."""
        return sum(p.stat().st_size for p in self.directory.glob("segment-*.jsonl") if p.exists())

    def drop_finished_segments(self, resolved: AbstractSet[str]) -> None:
        """Delete closed segments whose every event is stored (or dead-lettered)."""
        with self._lock:
            busy = {self.current, self._handle_number, *self._writing}
        for number, ids in list(self.segment_ids.items()):
            if number not in busy and ids <= resolved:
                (self.directory / f"segment-{number:08d}.jsonl").unlink(missing_ok=True)
                del self.segment_ids[number]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join(timeout=10)
        self._handle.close()
