"""The payload-log format: one row per scored instance, Parquet, partitioned for cheap windows.

Layout under a store (a directory or an ``s3://`` prefix)::

    <store>/predictions/inference_service=<isvc>/model_version=<v>/date=YYYY-MM-DD/hour=HH/<part>.parquet
    <store>/feedback/date=YYYY-MM-DD/<part>.parquet

Prediction rows hold the metadata columns below plus one column per feature, named as in the
data contract. Feedback rows hold ``request_id``, ``row_index``, ``label``, ``received_at``.
The serving sink writes both; monitoring reads them with ``load_window``. Neither imports the other.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlstack.core import names, storage
from mlstack.core.contract import DataContract

log = logging.getLogger(__name__)

META_COLUMNS = [
    "request_id",
    "row_index",
    "inference_service",
    "namespace",
    "component",
    "model_name",
    "model_version",
    "requested_at",
    "responded_at",
    "prediction",
    "probability",
]
# optional columns the sink adds: raw text of values the contract could not take ({feature: text}
# as JSON), and the ce-time as sent when it was outside the sane window and replaced
EXTRA_COLUMNS = ["invalid_values", "ce_time_replaced"]
FEEDBACK_COLUMNS = ["request_id", "row_index", "label", "received_at"]
POSITIONAL = re.compile(r"^input_(\d+)$")


def _part_name() -> str:
    return f"part-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"


def _write_parquet(df: pd.DataFrame, uri: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())


def write_predictions(store: str, rows: pd.DataFrame, part_name: str | None = None) -> list[str]:
    """Write prediction rows into their partitions; returns the files written.

    ``rows`` must hold the META_COLUMNS (``requested_at`` as UTC timestamps) and feature columns.
    ``part_name`` names every file written (one per partition directory) instead of a fresh random
    name: a writer that derives it from what it wrote (the stream's offset range) overwrites the same
    files when it writes the same rows again, so a replay never doubles them.
    """
    missing = [c for c in META_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"payload rows lack columns {missing}")
    if rows.empty:
        return []
    stamp = pd.to_datetime(rows["requested_at"], utc=True)
    keys = pd.DataFrame(
        {
            "isvc": rows["inference_service"].astype(str),
            "version": rows["model_version"].astype(str),
            "date": stamp.dt.strftime("%Y-%m-%d"),
            "hour": stamp.dt.strftime("%H"),
        }
    )
    written = []
    for (isvc, version, date, hour), index in keys.groupby(
        ["isvc", "version", "date", "hour"]
    ).groups.items():
        uri = names.safe_join(
            store,
            "predictions",
            f"inference_service={names.check_label(isvc, 'inference_service')}",
            f"model_version={names.check_version(version)}",
            f"date={date}",
            f"hour={hour}",
            part_name or _part_name(),
        )
        part = rows.loc[index].drop(columns=["inference_service", "model_version"])
        _write_parquet(part.reset_index(drop=True), uri)
        written.append(uri)
    return written


def label_text(value) -> str | None:
    """A label as stored: booleans ``true``/``false``, whole numbers without ``.0``, text as is."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_records(store: str, folder: str, records: list[dict]) -> str | None:
    """JSON lines under ``<store>/<folder>/date=<today>/`` (unpaired and quarantined events)."""
    import orjson

    if not records:
        return None
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    uri = names.safe_join(store, folder, f"date={day}", f"part-{uuid.uuid4().hex}.jsonl")
    storage.write_bytes(uri, b"".join(orjson.dumps(record, default=str) + b"\n" for record in records))
    return uri


def write_feedback(store: str, rows: pd.DataFrame, folder: str = "feedback") -> list[str]:
    """Write feedback (ground-truth labels) rows; returns the files written.

    ``label`` is stored as text (``"1"``, ``"true"``, ``"malignant"``) so partitions can never
    disagree on its type; readers map it with ``mlstack.core.labels``. ``folder`` is ``feedback``
    or ``feedback_orphans`` (ids the sink never logged).
    """
    missing = [c for c in FEEDBACK_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"feedback rows lack columns {missing}")
    if rows.empty:
        return []
    rows = rows.copy()
    rows["label"] = rows["label"].map(label_text).astype("string")
    stamp = pd.to_datetime(rows["received_at"], utc=True)
    written = []
    for date, index in stamp.dt.strftime("%Y-%m-%d").groupby(stamp.dt.strftime("%Y-%m-%d")).groups.items():
        uri = names.safe_join(store, folder, f"date={date}", _part_name())
        _write_parquet(rows.loc[index].reset_index(drop=True), uri)
        written.append(uri)
    return written


@dataclass
class ReadReport:
    """What a reader could not use: files it could not read, values it could not type."""

    files: int = 0
    unreadable: list[str] = field(default_factory=list)  # "<path>: <reason>"
    invalid_values: dict[str, int] = field(default_factory=dict)  # feature -> values made missing
    unmapped_positional: int = 0  # rows of positional columns left unnamed (no contract given)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "unreadable_files": len(self.unreadable),
            "unreadable": self.unreadable[:20],
            "invalid_values": dict(self.invalid_values),
            "unmapped_positional_rows": self.unmapped_positional,
        }


def _hive_values(relative: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in relative.split("/")[:-1] if "=" in part)


def read_tree(
    uri: str, keys: list[str], where: dict[str, str] | None = None, report: ReadReport | None = None
) -> pd.DataFrame | None:
    """Every Parquet file of a hive-partitioned tree as one frame, file by file.

    Files whose partition values do not match ``where`` are skipped unread. A file that cannot be
    read is counted in ``report`` (never fatal), and columns whose types differ between files (a
    model gained a feature, an old sink wrote text) are unified by pandas rather than refused.
    Hidden files (``.part…tmp``, a write cut short) are ignored.
    """
    report = report if report is not None else ReadReport()
    fs, path = storage.filesystem(uri)
    if fs.get_file_info(path).type == storage.pafs.FileType.NotFound:
        return None
    frames = []
    for info in fs.get_file_info(storage.pafs.FileSelector(path, recursive=True)):
        if not info.is_file or not info.path.endswith(".parquet") or info.base_name.startswith((".", "_")):
            continue
        relative = info.path[len(path) :].lstrip("/")
        values = _hive_values(relative)
        if where and any(values.get(k) != v for k, v in where.items()):
            continue
        report.files += 1
        try:
            with fs.open_input_file(info.path) as handle:
                frame = pq.read_table(handle).to_pandas()
        except (pa.ArrowException, OSError, ValueError) as exc:
            report.unreadable.append(f"{relative}: {exc}"[:300])
            log.warning("skipping unreadable payload file %s: %s", relative, exc)
            continue
        for key in keys:
            if key in values:
                frame[key] = values[key]
        frames.append(frame)
    if not frames:
        return None
    frames = [f for f in frames if not f.empty] or frames[:1]
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def read_partitioned(uri: str, keys: list[str], report: ReadReport | None = None) -> pd.DataFrame | None:
    """Read a hive-partitioned tree whose files may differ in columns (see ``read_tree``)."""
    return read_tree(uri, keys, None, report)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def apply_contract(frame: pd.DataFrame, contract: DataContract, report: ReadReport) -> pd.DataFrame:
    """Name positional ``input_<i>`` columns by contract order, then type every feature by the contract.

    Rows stored before the sink knew the contract hold ``input_0…``; a value that cannot take the
    feature's type (text in a numeric column, from an older sink) becomes missing and is counted.
    """
    features = contract.feature_names
    positional = sorted(
        (int(m.group(1)), c) for c in frame.columns if (m := POSITIONAL.match(str(c))) is not None
    )
    for index, column in positional:
        if index < len(features):
            name = features[index]
            frame[name] = frame[name].combine_first(frame[column]) if name in frame.columns else frame[column]
    if positional:
        frame = frame.drop(columns=[c for _, c in positional])
    for feature in contract.features:
        if feature.name not in frame.columns:
            continue
        column = frame[feature.name]
        if feature.is_categorical:
            frame[feature.name] = column.map(lambda v: None if pd.isna(v) else str(v)).astype("string")
            continue
        if pd.api.types.is_bool_dtype(column) or column.map(lambda v: isinstance(v, bool)).any():
            column = column.map(lambda v: None if isinstance(v, bool) else v)
        typed = pd.to_numeric(column, errors="coerce").astype("float64")
        lost = int((typed.isna() & column.notna()).sum())
        if lost:
            report.invalid_values[feature.name] = report.invalid_values.get(feature.name, 0) + lost
        frame[feature.name] = typed
    return frame


def load_window(
    store: str,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
    contract: DataContract | None = None,
    report: ReadReport | None = None,
) -> pd.DataFrame:
    """Prediction rows of one inference service in [since, until), with labels joined where known.

    ``label`` is the feedback label as stored (text); map it with ``mlstack.core.labels``. With a
    ``contract``, positional columns are named and features typed by it (``apply_contract``). What
    could not be read is counted in ``report`` and in ``frame.attrs["read_report"]``, never raised.
    Returns an empty DataFrame (with the META_COLUMNS and ``label``) when nothing was logged.
    """
    report = report if report is not None else ReadReport()
    where = {"inference_service": model} | ({"model_version": str(version)} if version is not None else {})
    keys = ["inference_service", "model_version", "date", "hour"]
    frame = read_tree(storage.join(store, "predictions"), keys, where, report)
    if frame is None or frame.empty:
        empty = pd.DataFrame(columns=[*META_COLUMNS, "label"])
        empty.attrs["read_report"] = report.to_dict()
        return empty
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True, errors="coerce")
    if since is not None:
        frame = frame[frame["requested_at"] >= _utc(since)]
    if until is not None:
        frame = frame[frame["requested_at"] < _utc(until)]
    frame = frame.drop(columns=[c for c in ("date", "hour") if c in frame.columns])
    frame["row_index"] = pd.to_numeric(frame["row_index"], errors="coerce").astype("Int64")
    frame = frame.drop_duplicates(subset=["request_id", "row_index"], keep="first")
    if contract is not None:
        frame = apply_contract(frame, contract, report)
    elif any(POSITIONAL.match(str(c)) for c in frame.columns):
        report.unmapped_positional += len(frame)
    feedback = read_tree(storage.join(store, "feedback"), ["date"], None, report)
    if feedback is not None and not feedback.empty and {"request_id", "row_index", "label"} <= set(feedback):
        feedback["row_index"] = pd.to_numeric(feedback["row_index"], errors="coerce").astype("Int64")
        feedback["label"] = feedback["label"].map(label_text).astype("string")
        labels = feedback.sort_values("received_at").drop_duplicates(
            subset=["request_id", "row_index"], keep="last"
        )[["request_id", "row_index", "label"]]
        frame = frame.merge(labels, on=["request_id", "row_index"], how="left")
    else:
        frame["label"] = pd.NA
    frame = frame.sort_values(["requested_at", "request_id", "row_index"]).reset_index(drop=True)
    frame.attrs["read_report"] = report.to_dict()
    return frame
