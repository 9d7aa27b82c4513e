"""The sink's reads and writes of the payload-log store (run in a worker thread, off the event loop).

``write_batch`` turns a flush's pairs into rows (columns named by the version's contract) and
writes them, keeping what cannot be stored under ``unpaired/`` or ``quarantine/``;
``stored_ids`` answers "which of these ids are already in the store" for recovery, reading only the
partitions the interrupted flush was going to write (listed in its intent) and only their
``request_id`` column, so a restart costs the same after a day or after a year of traffic.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import payload, storage
from mlstack.core.payload_read import list_files
from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink.events import Event, EventError
from mlstack.serving.sink.pairing import pair_rows, response_version, rows_frame

if TYPE_CHECKING:
    from mlstack.core.contract import DataContract

log = logging.getLogger(__name__)

PAIR = tuple[str, Event, Event]  # (ce-id, request, response)


def partition_of(request: Event, response: Event) -> str:
    """``<isvc>/<version>/<date>/<hour>``: where a pair's rows go (``request.time`` is ISO UTC)."""
    _, version = response_version(response)
    return f"{request.inference_service}/{version}/{request.time[:10]}/{request.time[11:13]}"


def records(pair: PAIR, reason: str, folder: str) -> list[dict[str, Any]]:
    return [event.to_record() | {"reason": reason, "folder": folder} for event in (pair[1], pair[2])]


def write_batch(
    store: str,
    batch: list[PAIR],
    dead: list[dict[str, Any]],
    contracts: ContractCache,
    until: float,
    chunk_rows: int = 5000,
) -> int:
    """Rows of each model version, then kept events; returns rows written.

    A version's contract is what the cache has, or what a lookup under way brings by ``until``;
    a pair the store refuses is quarantined, the rest of its flush stored. Rows are built and
    written ``chunk_rows`` at a time, so a flush of large requests never holds all their rows.
    """
    groups: dict[tuple[str, str, str], list[PAIR]] = {}
    for pair in batch:
        model, version = response_version(pair[2])
        groups.setdefault((pair[1].inference_service, model, version), []).append(pair)
    kept = list(dead)
    written = 0
    for (_, model, version), pairs in groups.items():
        contract = contracts.get(model, version, until=until)
        rows: list[dict[str, Any]] = []
        good: list[PAIR] = []
        for index, pair in enumerate(pairs):
            try:
                pair_rows_, dropped = pair_rows(pair[1], pair[2], contract)
            except EventError as exc:
                kept += records(pair, exc.rule, "unpaired")
                m.UNPAIRED.labels(exc.rule).inc(2)
            else:
                for feature, count in dropped.items():
                    m.INVALID_VALUES.labels(feature).inc(count)
                rows += pair_rows_
                good.append(pair)
            if rows and (len(rows) >= chunk_rows or index == len(pairs) - 1):
                count, refused = _write_rows(store, rows, good, contract)
                written += count
                kept += refused
                rows, good = [], []
    for folder in ("unpaired", "quarantine"):
        kept_here = [{k: v for k, v in r.items() if k != "folder"} for r in kept if r.get("folder") == folder]
        payload.write_records(store, folder, kept_here)
    return written


def _write_rows(
    store: str, rows: list[dict[str, Any]], good: list[PAIR], contract: DataContract | None
) -> tuple[int, list[dict[str, Any]]]:
    """Write one chunk of rows; on failure pair by pair, quarantining the pairs the store refuses."""
    try:
        payload.write_predictions(store, rows_frame(rows, contract))
        return len(rows), []
    except Exception as exc:  # one bad pair must not block its whole flush
        log.warning("a flush of %d rows failed (%s); writing pair by pair", len(rows), exc)
    written, kept = 0, []
    stored = stored_ids(store, [p[0] for p in good], sorted({partition_of(p[1], p[2]) for p in good}), None)
    for pair in good:
        if pair[0] in stored:
            continue
        try:
            one, _ = pair_rows(pair[1], pair[2], contract)
            payload.write_predictions(store, rows_frame(one, contract))
            written += len(one)
        except Exception as pair_exc:
            reason = f"store_refused: {type(pair_exc).__name__}: {pair_exc}"[:300]
            kept += records(pair, reason, "quarantine")
            m.QUARANTINED.inc(2)
    return written, kept


def stored_ids(store: str, ids: list[str], partitions: list[str] | None, since_day: str | None) -> set[str]:
    """The ``ids`` already in the store: rows in ``partitions`` (all when None), or kept events.

    ``since_day`` (YYYY-MM-DD) limits the kept events read to the folders from that day on.
    """
    wanted = set(ids)
    found: set[str] = set()
    root = storage.join(store, "predictions")
    fs, _ = storage.filesystem(root)
    if partitions is None:
        chosen = None
    else:
        chosen = set()
        for partition in partitions:
            isvc, version, date, hour = partition.split("/")
            chosen.add((isvc, version, date, hour))

    def keep(values: dict[str, str]) -> bool:
        if chosen is None:
            return True
        key = tuple(values.get(k) for k in ("inference_service", "model_version", "date", "hour"))
        return any(
            all(part is None or part == want for part, want in zip(key, c, strict=True)) for c in chosen
        )

    for path, relative, _ in list_files(root, keep):
        try:
            with fs.open_input_file(path) as handle:
                table = pq.read_table(handle, columns=["request_id"])
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            log.warning("recovery could not read %s: %s", relative, exc)
            continue
        found |= wanted & {i for i in table.column("request_id").to_pylist() if i is not None}
    return found | (wanted & kept_ids(store, since_day))


def kept_ids(store: str, since_day: str | None = None) -> set[str]:
    """Ids of events stored as JSON lines (``unpaired/`` and ``quarantine/``) from ``since_day`` on."""
    ids: set[str] = set()
    for folder in ("unpaired", "quarantine"):
        root = storage.join(store, folder)
        if not storage.exists(root):
            continue
        fs, path = storage.filesystem(root)
        for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
            if not info.is_file or not info.path.endswith(".jsonl") or info.base_name.startswith("."):
                continue
            day = info.path.rsplit("/", 2)[-2].removeprefix("date=")
            if since_day is not None and day.startswith("20") and day < since_day:
                continue
            with fs.open_input_stream(info.path) as stream:
                ids |= {orjson.loads(line)["id"] for line in stream.read().splitlines() if line}
    return ids


def yesterday() -> str:
    """The first day whose kept-event folders a recovery reads (a flush may cross midnight)."""
    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
