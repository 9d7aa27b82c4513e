"""Reading the payload-log store: a pruned walk of the hive folders, then file by file.

A reader names the partitions it wants with a predicate over the folder values it has seen so far
(``inference_service``, ``model_version``, ``date``, ``hour``); a folder the predicate refuses is
never listed, so a one-hour window over 30 days of hourly partitions lists one service, one
version, 30 date folders and 24 hour folders, and opens only the files of its own hours.
``window_keep`` builds that predicate for a time window; ``mlstack.core.payload.load_window`` uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import storage

log = logging.getLogger(__name__)

Keep = Callable[[dict[str, str]], bool]
HOUR = timedelta(hours=1)


@dataclass
class ReadReport:
    """What a reader could not use: files it could not read, values it could not type."""

    files: int = 0
    unreadable: list[str] = field(default_factory=list)  # "<path>: <reason>"
    invalid_values: dict[str, int] = field(default_factory=dict)  # feature -> values made missing
    unmapped_positional: int = 0  # rows of positional columns left unnamed (no contract given)
    rows_without_id: int = 0  # rows with no request_id: kept as they are, never deduplicated

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "unreadable_files": len(self.unreadable),
            "unreadable": self.unreadable[:20],
            "invalid_values": dict(self.invalid_values),
            "unmapped_positional_rows": self.unmapped_positional,
            "rows_without_request_id": self.rows_without_id,
        }


def hive_values(relative: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in relative.split("/")[:-1] if "=" in part)


def partition_span(values: dict[str, str]) -> tuple[datetime, datetime] | None:
    """[start, end) of the time a partition's ``date`` (and ``hour``) cover; None if it names none."""
    if "date" not in values:
        return None
    try:
        start = datetime.strptime(values["date"], "%Y-%m-%d").replace(tzinfo=UTC)
        if "hour" not in values:
            return start, start + timedelta(days=1)
        hour = int(values["hour"])
    except ValueError:
        return None  # a folder we did not write: read it, the rows' own times decide
    if not 0 <= hour < 24:
        return None
    return start + hour * HOUR, start + (hour + 1) * HOUR


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_keep(
    where: dict[str, str] | None = None, since: datetime | None = None, until: datetime | None = None
) -> Keep:
    """A predicate that keeps partitions matching ``where`` whose time span meets [since, until)."""
    since = _utc(since) if since is not None else None
    until = _utc(until) if until is not None else None

    def keep(values: dict[str, str]) -> bool:
        if where and any(values.get(k, v) != v for k, v in where.items()):
            return False
        span = partition_span(values)
        if span is None:
            return True
        start, end = span
        return not ((since is not None and end <= since) or (until is not None and start >= until))

    return keep


def list_files(uri: str, keep: Keep | None = None) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(path, path relative to ``uri``, partition values) of each Parquet file ``keep`` accepts.

    Folders are listed one level at a time and a folder ``keep`` refuses is not entered. Hidden
    files (``.part…tmp``, a write cut short) are skipped. Files come in name order, which for the
    files we write (``part-<UTC time>-…``) is the order they were written.
    """
    fs, root = storage.filesystem(uri)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return
    pending = [(root, dict[str, str]())]
    while pending:
        folder, values = pending.pop(0)
        infos = sorted(fs.get_file_info(pafs.FileSelector(folder, recursive=False)), key=_name)
        for info in infos:
            if info.base_name.startswith((".", "_")):
                continue
            if info.type == pafs.FileType.Directory:
                key, sep, value = info.base_name.partition("=")
                child = values | {key: value} if sep else values
                if not sep or keep is None or keep(child):
                    pending.append((info.path, child))
            elif info.is_file and info.path.endswith(".parquet"):
                yield info.path, info.path[len(root) :].lstrip("/"), values


def _name(info: pafs.FileInfo) -> str:
    name: str = info.base_name
    return name


def read_tree(
    uri: str,
    keys: list[str],
    where: dict[str, str] | None = None,
    report: ReadReport | None = None,
    keep: Keep | None = None,
) -> pd.DataFrame | None:
    """The Parquet files of a hive-partitioned tree that ``keep`` (or ``where``) accepts, as one frame.

    A file that cannot be read is counted in ``report`` (never fatal); one that vanished between
    the listing and the read (compacted meanwhile) makes its folder be listed again, so the
    compacted file that now holds its rows is read instead. Columns whose types differ between files
    (a model gained a feature, an old sink wrote text) are unified by pandas rather than refused.
    """
    report = report if report is not None else ReadReport()
    keep = keep or (window_keep(where) if where else None)
    fs, root = storage.filesystem(uri)
    frames: list[pd.DataFrame] = []
    seen: set[str] = set()
    vanished: dict[str, dict[str, str]] = {}

    def read(path: str, relative: str, values: dict[str, str]) -> None:
        seen.add(path)
        report.files += 1
        try:
            with fs.open_input_file(path) as handle:
                frame = pq.read_table(handle).to_pandas()
        except FileNotFoundError:
            report.files -= 1
            vanished[path.rsplit("/", 1)[0]] = values
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            report.unreadable.append(f"{relative}: {exc}"[:300])
            log.warning("skipping unreadable payload file %s: %s", relative, exc)
            return
        for key in keys:
            if key in values:
                frame[key] = values[key]
        frames.append(frame)

    for path, relative, values in list_files(uri, keep):
        read(path, relative, values)
    for folder, values in vanished.items():
        relative_folder = folder[len(root) :].lstrip("/")
        for path, relative, _ in list_files(folder):
            if path not in seen:
                read(path, f"{relative_folder}/{relative}", values)
    if not frames:
        return None
    frames = [f for f in frames if not f.empty] or frames[:1]
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
