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
import uuid
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mlstack.core import storage

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
FEEDBACK_COLUMNS = ["request_id", "row_index", "label", "received_at"]


def _part_name() -> str:
    return f"part-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"


def _write_parquet(df: pd.DataFrame, uri: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())


def write_predictions(store: str, rows: pd.DataFrame) -> list[str]:
    """Write prediction rows into their partitions; returns the files written.

    ``rows`` must hold the META_COLUMNS (``requested_at`` as UTC timestamps) and feature columns.
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
        uri = storage.join(
            store,
            "predictions",
            f"inference_service={isvc}",
            f"model_version={version}",
            f"date={date}",
            f"hour={hour}",
            _part_name(),
        )
        part = rows.loc[index].drop(columns=["inference_service", "model_version"])
        _write_parquet(part.reset_index(drop=True), uri)
        written.append(uri)
    return written


def write_feedback(store: str, rows: pd.DataFrame) -> list[str]:
    """Write feedback (ground-truth labels) rows; returns the files written."""
    missing = [c for c in FEEDBACK_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"feedback rows lack columns {missing}")
    if rows.empty:
        return []
    stamp = pd.to_datetime(rows["received_at"], utc=True)
    written = []
    for date, index in stamp.dt.strftime("%Y-%m-%d").groupby(stamp.dt.strftime("%Y-%m-%d")).groups.items():
        uri = storage.join(store, "feedback", f"date={date}", _part_name())
        _write_parquet(rows.loc[index].reset_index(drop=True), uri)
        written.append(uri)
    return written


def read_partitioned(uri: str, keys: list[str], filter_expr=None) -> pd.DataFrame | None:
    """Read a hive-partitioned tree whose files may differ in columns (a model gains a feature)."""
    fs, path = storage.filesystem(uri)
    if fs.get_file_info(path).type == storage.pafs.FileType.NotFound:
        return None
    partitioning = pads.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning=partitioning)
    fragments = list(dataset.get_fragments())
    if not fragments:
        return None
    schema = pa.unify_schemas(
        [f.physical_schema for f in fragments] + [pa.schema([(k, pa.string()) for k in keys])],
        promote_options="permissive",
    )
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning=partitioning, schema=schema)
    return dataset.to_table(filter=filter_expr).to_pandas()


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def load_window(
    store: str,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
) -> pd.DataFrame:
    """Prediction rows of one inference service in [since, until), with labels joined where known.

    Returns an empty DataFrame (with the META_COLUMNS and ``label``) when nothing was logged.
    """
    import pyarrow.compute as pc

    expr = pc.field("inference_service") == model
    if version is not None:
        expr = expr & (pc.field("model_version") == str(version))
    frame = read_partitioned(
        storage.join(store, "predictions"), ["inference_service", "model_version", "date", "hour"], expr
    )
    if frame is None or frame.empty:
        return pd.DataFrame(columns=[*META_COLUMNS, "label"])
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
    if since is not None:
        frame = frame[frame["requested_at"] >= _utc(since)]
    if until is not None:
        frame = frame[frame["requested_at"] < _utc(until)]
    frame = frame.drop(columns=[c for c in ("date", "hour") if c in frame.columns])
    frame = frame.drop_duplicates(subset=["request_id", "row_index"], keep="first")
    feedback = read_partitioned(storage.join(store, "feedback"), ["date"])
    if feedback is not None and not feedback.empty:
        labels = feedback.sort_values("received_at").drop_duplicates(
            subset=["request_id", "row_index"], keep="last"
        )[["request_id", "row_index", "label"]]
        frame = frame.merge(labels, on=["request_id", "row_index"], how="left")
    else:
        frame["label"] = pd.NA
    return frame.sort_values(["requested_at", "request_id", "row_index"]).reset_index(drop=True)
