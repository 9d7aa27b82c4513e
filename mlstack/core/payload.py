"""The payload-log format: one row per scored instance, Parquet, partitioned for cheap windows.

Layout under a store (a directory or an ``s3://`` prefix)::

    <store>/predictions/inference_service=<isvc>/model_version=<v>/date=YYYY-MM-DD/hour=HH/<part>.parquet
    <store>/feedback/date=YYYY-MM-DD/hour=HH/<part>.parquet          (hour of receipt; older stores:
    <store>/feedback_orphans/date=YYYY-MM-DD/hour=HH/<part>.parquet   date=YYYY-MM-DD/<part>.parquet)
    <store>/unpaired/date=YYYY-MM-DD/<part>.jsonl, <store>/quarantine/date=YYYY-MM-DD/<part>.jsonl

Prediction rows hold the metadata columns below plus one column per feature, named as in the
data contract; their hour is the hour of ``requested_at``. Feedback rows hold ``request_id``,
``row_index``, ``label``, ``received_at``. Part files are ``part-<UTC time>-<random>.parquet``
(one per partition per flush) until ``mlstack.core.compaction`` merges a closed hour into
``compacted-….parquet``. The serving sink writes, monitoring reads with ``load_window``, which
opens only the partitions of its window (``mlstack.core.payload_read``). Neither imports the other.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlstack.core import names, storage
from mlstack.core.contract import DataContract
from mlstack.core.payload_read import ReadReport, list_files, read_tree, window_keep

__all__ = ["ReadReport", "list_files", "read_tree", "window_keep"]  # re-exported: the readers' home

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
# feedback received this long before a window's start is not read for it (clock skew allowance)
FEEDBACK_LOOKBACK = timedelta(hours=1)


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


def label_text(value: object) -> str | None:
    """A label as stored: booleans ``true``/``false``, whole numbers without ``.0``, text as is."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_records(store: str, folder: str, records: list[dict[str, Any]]) -> str | None:
    """JSON lines under ``<store>/<folder>/date=<today>/`` (unpaired and quarantined events)."""
    import orjson

    if not records:
        return None
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    uri = names.safe_join(store, folder, f"date={day}", f"part-{uuid.uuid4().hex}.jsonl")
    storage.write_bytes(uri, b"".join(orjson.dumps(record, default=str) + b"\n" for record in records))
    return uri


def write_feedback(store: str, rows: pd.DataFrame, folder: str = "feedback") -> list[str]:
    """Write feedback (ground-truth labels) rows under the hour they were received; returns the files.

    ``label`` is stored as text (``"1"``, ``"true"``, ``"malignant"``) so partitions can never
    disagree on its type; readers map it with ``mlstack.core.labels``. ``folder`` is ``feedback``
    or ``feedback_orphans`` (ids the sink did not know when the label came). Rows keep their order:
    for one id, the last row of the latest ``received_at`` is the label that counts.
    """
    missing = [c for c in FEEDBACK_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"feedback rows lack columns {missing}")
    if rows.empty:
        return []
    rows = rows.copy()
    rows["label"] = rows["label"].map(label_text).astype("string")
    stamp = pd.to_datetime(rows["received_at"], utc=True)
    keys = pd.DataFrame({"date": stamp.dt.strftime("%Y-%m-%d"), "hour": stamp.dt.strftime("%H")})
    written = []
    for (date, hour), index in keys.groupby(["date", "hour"], sort=True).groups.items():
        uri = names.safe_join(store, folder, f"date={date}", f"hour={hour}", _part_name())
        _write_parquet(rows.loc[index].reset_index(drop=True), uri)
        written.append(uri)
    return written


def read_partitioned(uri: str, keys: list[str], report: ReadReport | None = None) -> pd.DataFrame | None:
    """Read a whole hive-partitioned tree whose files may differ in columns (see ``read_tree``)."""
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
    keep = window_keep(where, since, until)
    frame = read_tree(storage.join(store, "predictions"), keys, report=report, keep=keep)
    if frame is None or frame.empty:
        empty = pd.DataFrame(columns=[*META_COLUMNS, "label"])
        empty.attrs["read_report"] = report.to_dict()
        return empty
    for column in ("request_id", "row_index"):  # a file we did not write may lack them
        if column not in frame.columns:
            frame[column] = pd.NA
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True, errors="coerce")
    if since is not None:
        frame = frame[frame["requested_at"] >= _utc(since)]
    if until is not None:
        frame = frame[frame["requested_at"] < _utc(until)]
    frame = frame.drop(columns=[c for c in ("date", "hour") if c in frame.columns])
    frame["row_index"] = pd.to_numeric(frame["row_index"], errors="coerce").astype("Int64")
    frame = _stored_once(frame, report)
    if contract is not None:
        frame = apply_contract(frame, contract, report)
    elif any(POSITIONAL.match(str(c)) for c in frame.columns):
        report.unmapped_positional += len(frame)
    labels = _latest_labels(store, since, report)
    if labels is not None:
        frame = frame.merge(labels, on=["request_id", "row_index"], how="left")
    else:
        frame["label"] = pd.NA
    frame = frame.sort_values(["requested_at", "request_id", "row_index"], kind="stable").reset_index(
        drop=True
    )
    frame.attrs["read_report"] = report.to_dict()
    return frame


def _stored_once(frame: pd.DataFrame, report: ReadReport) -> pd.DataFrame:
    """Drop repeated (request_id, row_index) rows (a retried flush, a compaction under way).

    Rows without a request_id cannot be told apart: every one is kept, and counted.
    """
    known = frame["request_id"].notna()
    report.rows_without_id += int((~known).sum())
    if known.all():
        return frame.drop_duplicates(subset=["request_id", "row_index"], keep="first")
    repeated = frame.duplicated(subset=["request_id", "row_index"], keep="first") & known
    return frame[~repeated]


def _latest_labels(store: str, since: datetime | None, report: ReadReport) -> pd.DataFrame | None:
    """The label that counts per (request_id, row_index): the last one received (stable on ties).

    Only feedback received from ``FEEDBACK_LOOKBACK`` before ``since`` on is read: a label comes
    after the prediction it labels (the hour covers clock skew between predictor and sink).
    """
    keep = window_keep(None, since - FEEDBACK_LOOKBACK if since is not None else None, None)
    feedback = read_tree(storage.join(store, "feedback"), [], report=report, keep=keep)
    if feedback is None or feedback.empty or not {"request_id", "row_index", "label"} <= set(feedback):
        return None
    feedback = feedback[feedback["request_id"].notna()]
    feedback["row_index"] = pd.to_numeric(feedback["row_index"], errors="coerce").astype("Int64")
    feedback["label"] = feedback["label"].map(label_text).astype("string")
    if "received_at" in feedback.columns:
        received = pd.to_datetime(feedback["received_at"], utc=True, errors="coerce")
        order = received.reset_index(drop=True).sort_values(kind="stable", na_position="first").index
        feedback = feedback.iloc[order]
    latest = feedback.drop_duplicates(subset=["request_id", "row_index"], keep="last")
    return latest[["request_id", "row_index", "label"]]
