"""Payload rows of streamed predictions: the sink's row format, carried as Arrow on the payload topic.

A row is what ``mlstack.serving.sink.pairing.pair_rows`` makes from a logged request/response pair
(``mlstack.core.payload``'s format): the features, named and typed by the contract, and the
metadata columns. ``request_id`` is the input event's ``topic/partition/offset``, ``requested_at``
its Kafka timestamp (replaced by the receive time outside the sink's sane window, as the sink does
with ``ce-time``, the original kept in ``ce_time_replaced``), ``component`` is ``stream``.

Rows travel inside the scorer's transaction as Arrow IPC chunks on the payload topic, so they become
visible exactly when the predictions do; ``store_writer`` turns them into Parquet with
``store_frame``, which gives every column the dtype ``mlstack.serving.sink.pairing.rows_frame`` gives it, so the drift job
and the canary analysis cannot tell a streamed row from a logged one (a unit test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from mlstack.core import payload
from mlstack.core.contract import DataContract
from mlstack.serving.sink.events import TimeWindow  # the sink's bounds, applied to Kafka timestamps
from mlstack.serving.sink.pairing import type_value

COMPONENT = "stream"
CHUNK_ROWS = 2000  # rows per payload record: ~250 KB of Arrow before compression, under Kafka's 1 MB
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")
_TIME = pa.timestamp("ns", tz="UTC")


def event_time(timestamp_ms: int | None, now_ns: int, window: TimeWindow) -> tuple[int, str | None]:
    """(requested_at in ns, the original time as ISO text when it was replaced)."""
    if timestamp_ms is None or timestamp_ms <= 0:
        return now_ns, None
    stamp = timestamp_ms * 1_000_000
    age = (now_ns - stamp) / 1e9
    if age > window.max_age_seconds or -age > window.max_future_seconds:
        return now_ns, pd.Timestamp(stamp, tz="UTC").isoformat()
    return stamp, None


@dataclass
class RowsBuilder:
    """Collects one model version's scored rows of a micro-batch, column by column."""

    contract: DataContract
    meta: dict[str, str]  # inference_service, namespace, model_name, model_version
    request_id: list[str] = field(default_factory=list)
    row_index: list[int] = field(default_factory=list)
    requested_at: list[int] = field(default_factory=list)
    replaced: list[str | None] = field(default_factory=list)
    invalid: list[str | None] = field(default_factory=list)
    probability: list[list[float]] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = {f.name: [] for f in self.contract.features}
        self._features = {f.name: f for f in self.contract.features}
        self._boolean = [f.name for f in self.contract.features if f.type == "boolean"]

    def add(
        self,
        request_id: str,
        rows: int,
        requested_at: tuple[int, str | None],
        columns: dict[str, list[Any]],
        proba: list[float],
        checked: bool,
    ) -> None:
        """Rows of one event. ``checked``: the contract's fast check passed (values are typed already)."""
        self.request_id.extend([request_id] * rows)
        self.row_index.extend(range(rows))
        self.requested_at.extend([requested_at[0]] * rows)
        self.replaced.extend([requested_at[1]] * rows)
        self.probability.append(proba)
        if checked:
            for name, values in columns.items():
                self.columns[name].extend(values)
            self.invalid.extend([None] * rows)
            return
        # values the fast check doubted (e.g. "40" for a number): the sink's per-value rule
        dropped: list[dict[str, str]] = [{} for _ in range(rows)]
        for name, values in columns.items():
            feature = self._features[name]
            for row, raw in enumerate(values):
                typed, bad = type_value(raw, feature)
                if bad:
                    dropped[row][name] = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
                self.columns[name].append(typed)
        self.invalid.extend(orjson.dumps(d).decode() if d else None for d in dropped)

    def add_many(
        self,
        request_ids: list[str],
        requested_at: list[tuple[int, str | None]],
        columns: dict[str, list[Any]],
        proba: list[float],
    ) -> None:
        """One-row events whose values passed the contract's fast check, column by column."""
        count = len(request_ids)
        self.request_id.extend(request_ids)
        self.row_index.extend([0] * count)
        self.requested_at.extend(stamp for stamp, _ in requested_at)
        self.replaced.extend(replaced for _, replaced in requested_at)
        self.invalid.extend([None] * count)
        self.probability.append(proba)
        for name, values in columns.items():
            self.columns[name].extend(values)

    def __len__(self) -> int:
        return len(self.request_id)

    def table(self, responded_at_ns: int, threshold: float) -> pa.Table:
        """The rows as an Arrow table in the payload-log format (features typed by the contract)."""
        rows = len(self.request_id)
        proba = np.fromiter((p for part in self.probability for p in part), dtype=np.float64, count=rows)
        arrays: dict[str, pa.Array] = {
            "request_id": pa.array(self.request_id, pa.string()),
            "row_index": pa.array(self.row_index, pa.int64()),
        }
        for name in ("inference_service", "namespace"):
            arrays[name] = pa.array([self.meta[name]] * rows, pa.string())
        arrays["component"] = pa.array([COMPONENT] * rows, pa.string())
        for name in ("model_name", "model_version"):
            arrays[name] = pa.array([self.meta[name]] * rows, pa.string())
        arrays["requested_at"] = pa.array(np.asarray(self.requested_at, dtype="int64"), _TIME)
        arrays["responded_at"] = pa.array(np.full(rows, responded_at_ns, dtype="int64"), _TIME)
        arrays["prediction"] = pa.array((proba >= threshold).astype(np.float64))
        arrays["probability"] = pa.array(proba.astype(np.float64))
        for name, values in self.columns.items():
            feature = self._features[name]
            if feature.is_categorical:
                if name in self._boolean:  # the sink stores booleans' text as True/False
                    values = [v.capitalize() if isinstance(v, str) else v for v in values]
                arrays[name] = pa.array(values, pa.string())
            else:
                arrays[name] = pa.array(np.array(values, dtype=np.float64))
        arrays["invalid_values"] = pa.array(self.invalid, pa.string())
        arrays["ce_time_replaced"] = pa.array(self.replaced, pa.string())
        return pa.table(arrays)


def encode(table: pa.Table) -> list[bytes]:
    """Arrow IPC streams (zstd) of at most CHUNK_ROWS rows each: the payload topic's values."""
    chunks = []
    for start in range(0, table.num_rows, CHUNK_ROWS):
        sink = pa.BufferOutputStream()
        part = table.slice(start, CHUNK_ROWS)
        with pa.ipc.new_stream(sink, part.schema, options=_IPC) as writer:
            writer.write_table(part)
        chunks.append(sink.getvalue().to_pybytes())
    return chunks


def decode(value: bytes) -> pa.Table:
    """One payload record back into its rows."""
    return pa.ipc.open_stream(pa.py_buffer(value)).read_all()


def store_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """Payload tables as the DataFrame ``write_predictions`` stores, typed as ``mlstack.serving.sink.pairing.rows_frame`` types.

    Features: text -> pandas ``string``, numbers -> float64 (what the contract gave them); the two
    optional text columns -> ``string``; times -> UTC timestamps; the rest as Arrow hands them over.
    """
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    frame = table.to_pandas()
    meta = set(payload.META_COLUMNS)
    for column, kind in zip(table.column_names, table.schema.types, strict=True):
        if column in ("invalid_values", "ce_time_replaced") or (
            column not in meta and pa.types.is_string(kind)
        ):
            frame[column] = frame[column].astype("string")
    return frame


def responded_now() -> tuple[int, datetime]:
    now = pd.Timestamp.now(tz="UTC")
    return int(now.value), now.to_pydatetime()
