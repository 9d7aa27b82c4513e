"""Compaction: the small files of a closed partition become one file, so a store stays fast for months.

The sink writes one file per partition per flush (every few seconds) and ``/feedback`` one per
request; left alone, a busy model's hour holds thousands of files and every read pays for each.
``compact`` merges the files of every partition whose time span ended ``min_age`` ago (an hour
partition, or a day for the older date-only feedback folders) into ``compacted-<UTC time>-<id>.parquet``:

- **no row changes**: files are concatenated in name order (the order they were written), rows
  and types as they are; files whose columns differ go to separate outputs; an unreadable file is
  left where it is and reported;
- **safe to interrupt**: an output is written under a hidden name and renamed (one atomic object
  PUT on S3), and names the inputs it replaces in its Parquet metadata (``mlstack.replaces``);
  inputs are deleted only after every output of the partition exists. A run that finds a compacted
  file whose inputs are still there deletes them first (the interrupted run's last step);
- **safe beside readers and the sink**: readers drop repeated ``(request_id, row_index)`` rows and
  list a folder again when a file vanished under them (``mlstack.core.payload_read``); a file the
  sink adds while a partition is compacted is not an input and stays.

Run it from ``mlstack payloads compact`` (the chart's CronJob) against a store only one compaction
writes at a time (the CronJob's ``concurrencyPolicy: Forbid``).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import storage
from mlstack.core.payload_read import list_files, partition_span

log = logging.getLogger(__name__)

FOLDERS = ("predictions", "feedback", "feedback_orphans")
PREFIX = "compacted-"
REPLACES = b"mlstack.replaces"
ROW_GROUP_ROWS = 65_536


@dataclass
class CompactionResult:
    """What one run did (printed by ``mlstack payloads compact --json``)."""

    partitions: int = 0  # partitions compacted
    files_before: int = 0  # their files before
    files_after: int = 0  # and after
    rows: int = 0
    finished: int = 0  # inputs of an interrupted run deleted
    open_partitions: int = 0  # partitions younger than min_age, left for a later run
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "rows": self.rows,
            "finished_interrupted": self.finished,
            "open_partitions": self.open_partitions,
            "errors": self.errors[:50],
        }


def compact(
    store: str,
    now: datetime | None = None,
    min_age: timedelta = timedelta(hours=2),
    max_rows_per_file: int = 2_000_000,
    folders: tuple[str, ...] = FOLDERS,
) -> CompactionResult:
    """Compact every closed partition of ``store``'s ``folders``; returns what was done."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    result = CompactionResult()
    for folder in folders:
        partitions: dict[str, tuple[dict[str, str], list[str]]] = {}
        for path, _, values in list_files(storage.join(store, folder)):
            partitions.setdefault(path.rsplit("/", 1)[0], (values, []))[1].append(path)
        for partition, (values, files) in sorted(partitions.items()):
            span = partition_span(values)
            if span is None or span[1] > now - min_age:
                result.open_partitions += span is not None
                continue
            try:
                _compact_partition(store, partition, files, max_rows_per_file, result)
            except (pa.ArrowException, OSError) as exc:
                result.errors.append(f"{partition}: {exc}"[:300])
                log.warning("could not compact %s: %s", partition, exc)
    return result


def _fs(store: str) -> pafs.FileSystem:
    return storage.filesystem(store)[0]


def _compact_partition(
    store: str, partition: str, files: list[str], max_rows: int, result: CompactionResult
) -> None:
    fs = _fs(store)
    files = _finish_interrupted(fs, files, result)
    if len(files) < 2:
        return
    groups: list[tuple[pa.Schema, list[tuple[str, pa.Table]]]] = []
    for path in files:
        try:
            with fs.open_input_file(path) as handle:
                table = pq.read_table(handle)
        except (pa.ArrowException, OSError) as exc:
            result.errors.append(f"{path}: unreadable, left in place: {exc}"[:300])
            continue
        bare = table.schema.remove_metadata()
        for schema, members in groups:
            if schema.remove_metadata().equals(bare):
                members.append((path, table))
                break
        else:
            groups.append((table.schema, [(path, table)]))
    groups = [(schema, members) for schema, members in groups if len(members) > 1]
    if not groups:  # one file per schema already: nothing to merge
        return
    inputs = [path for _, members in groups for path, _ in members]
    outputs = 0
    for schema, members in groups:
        batch: list[tuple[str, pa.Table]] = []
        for path, table in members:
            batch.append((path, table))
            if sum(t.num_rows for _, t in batch) >= max_rows:
                _write(fs, partition, schema, batch)
                outputs, batch = outputs + 1, []
        if batch:
            _write(fs, partition, schema, batch)
            outputs += 1
    for path in inputs:  # every output exists: the inputs' rows are all in them
        _delete(fs, path)
    result.partitions += 1
    result.files_before += len(inputs)
    result.files_after += outputs
    result.rows += sum(t.num_rows for _, members in groups for _, t in members)


def _delete(fs: pafs.FileSystem, path: str) -> None:
    fs.delete_file(path)


def _finish_interrupted(fs: pafs.FileSystem, files: list[str], result: CompactionResult) -> list[str]:
    """Delete inputs that a complete compacted file already holds; returns the files left."""
    present = set(files)
    for path in [f for f in files if f.rsplit("/", 1)[-1].startswith(PREFIX)]:
        with fs.open_input_file(path) as handle:
            metadata = pq.read_schema(handle).metadata or {}
        folder = path.rsplit("/", 1)[0]
        for name in orjson.loads(metadata.get(REPLACES, b"[]")):
            stale = f"{folder}/{name}"
            if stale in present:
                fs.delete_file(stale)
                present.discard(stale)
                result.finished += 1
    return [f for f in files if f in present]


def _write(fs: pafs.FileSystem, partition: str, schema: pa.Schema, batch: list[tuple[str, pa.Table]]) -> None:
    names = [path.rsplit("/", 1)[-1] for path, _ in batch]
    metadata = dict(schema.metadata or {}) | {REPLACES: orjson.dumps(names)}
    schema = schema.with_metadata(metadata)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    final = f"{partition}/{PREFIX}{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    local = isinstance(fs, pafs.LocalFileSystem)
    target = f"{partition}/.{final.rsplit('/', 1)[-1]}.tmp" if local else final
    with fs.open_output_stream(target) as stream:
        with pq.ParquetWriter(stream, schema, compression="zstd") as writer:
            pending: list[pa.Table] = []
            for _, table in batch:
                pending.append(table.replace_schema_metadata(metadata))
                if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
    if local:
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(target, final)
