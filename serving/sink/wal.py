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

Appends are group-committed: concurrent requests queue their lines, one writer writes them all and
calls fsync once, then every waiting request is answered. Durability per event, throughput per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

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
        self._queue: list[tuple[str, bytes, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self.segment_ids: dict[int, set[str]] = {}
        existing = self.segments()
        self.current = (existing[-1] + 1) if existing else 1
        self._handle = self._open(self.current)
        self._handle_number = self.current
        self.segment_ids[self.current] = set()

    # ------------------------------------------------------------------ recovery

    def segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("segment-*.jsonl"))

    def replay(self) -> Iterator[tuple[int, dict]]:
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

    def intents(self) -> list[tuple[Path, list[str]]]:
        found = []
        for path in sorted(self.directory.glob("intent-*.json")):
            try:
                found.append((path, orjson.loads(path.read_bytes())))
            except orjson.JSONDecodeError:
                path.unlink()  # torn before its fsync: its flush never started writing
        return found

    # ------------------------------------------------------------------ appends

    async def append(self, record: dict) -> None:
        """Return once ``record`` is fsync'd to the current segment."""
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = asyncio.create_task(self._write_loop())
        future = asyncio.get_running_loop().create_future()
        self._queue.append((record["id"], orjson.dumps(record) + b"\n", future))
        assert self._wake is not None  # created with the writer above
        self._wake.set()
        await future

    async def _write_loop(self) -> None:
        assert self._wake is not None  # append() creates it before starting this loop
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                if self._handle_number != self.current:  # rotate() asked for a new segment
                    self._handle.close()
                    self._handle = self._open(self.current)
                    self._handle_number = self.current
                self.segment_ids.setdefault(self._handle_number, set()).update(i for i, _, _ in batch)
                try:
                    await asyncio.to_thread(
                        self._write_sync, self._handle, b"".join(line for _, line, _ in batch)
                    )
                except Exception as exc:  # disk full, I/O error: every waiter fails, none is acknowledged
                    log.error("WAL write failed: %s", exc)
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _open(self, number: int):
        handle = open(self.directory / f"segment-{number:08d}.jsonl", "ab")
        _fsync_dir(self.directory)
        return handle

    @staticmethod
    def _write_sync(handle, data: bytes) -> None:
        handle.write(data)
        handle.flush()
        os.fdatasync(handle.fileno())  # data and size; the segment's directory entry was fsync'd at open

    def rotate(self) -> None:
        """Send events from now on to a new segment (the writer switches before its next write)."""
        self.current += 1
        self.segment_ids.setdefault(self.current, set())

    # ------------------------------------------------------------------ flush bookkeeping

    def write_intent(self, number: int, ids: list[str]) -> Path:
        path = self.directory / f"intent-{number:08d}.json"
        with open(path, "wb") as handle:
            handle.write(orjson.dumps(ids))
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

    def drop_finished_segments(self, resolved) -> None:
        """Delete closed segments whose every event is stored (or dead-lettered)."""
        for number, ids in list(self.segment_ids.items()):
            if number not in (self.current, self._handle_number) and ids <= resolved:
                (self.directory / f"segment-{number:08d}.jsonl").unlink(missing_ok=True)
                del self.segment_ids[number]

    def close(self) -> None:
        self._handle.close()
        if self._writer is not None:
            self._writer.cancel()
