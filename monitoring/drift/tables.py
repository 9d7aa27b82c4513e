"""The drift job's view of a table: row chunks for the row checks, and one column at a time for the statistics.

A DataFrame (a payload-log window, a reference from MLflow, a CSV file) is one chunk. A Parquet
file or directory is streamed: row checks read it row group by row group, and each column's
statistic reads that column alone into one array, so memory holds one column of the window (80
MB per 10M float rows) rather than the whole table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mlstack.core import storage
from mlstack.core.data import DataError, load_table, parquet_batches

CHUNK_ROWS = 65_536  # rows per chunk of the row checks: ~18 MB of pandas for 30 columns


class Table(Protocol):
    rows: int
    columns: list[str]

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        """The table's rows in chunks, with those of ``columns`` it has."""
        ...

    def numbers(self, column: str) -> np.ndarray:
        """One column as float64 (missing and unparseable values NaN), a fresh array."""
        ...

    def value_counts(self, column: str) -> dict[Any, int]:
        """Count per non-missing value of one column."""
        ...

    def series(self, column: str) -> pd.Series:
        """One column as pandas (for Evidently's own tests, on methods this job does not compute)."""
        ...

    def feature_series(self, column: str) -> pd.Series:
        """A numeric feature as pandas holds it in a whole-table read (numbers float64; text as text)."""
        ...


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


@dataclass
class FrameTable:
    """A table that is a DataFrame already."""

    frame: pd.DataFrame
    rows: int = field(init=False)
    columns: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.frame)
        self.columns = [str(c) for c in self.frame.columns]

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        yield self.frame[[c for c in columns if c in self.frame.columns]]

    def numbers(self, column: str) -> np.ndarray:
        return _numbers(self.frame[column])

    def value_counts(self, column: str) -> dict[Any, int]:
        counts = self.frame[column].astype(object).value_counts(dropna=True)
        return {key: int(count) for key, count in counts.items()}

    def series(self, column: str) -> pd.Series:
        return self.frame[column]

    def feature_series(self, column: str) -> pd.Series:
        return self.frame[column]


class ParquetTable:
    """A Parquet file or directory, local or s3://, read in row groups and one column at a time."""

    def __init__(self, uri: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.uri, self.chunk_rows = uri, chunk_rows
        self._fs, self._path = storage.filesystem(uri)
        try:
            dataset = pads.dataset(self._path, filesystem=self._fs, format="parquet")
            self.rows = int(dataset.count_rows())
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {uri}: {exc}") from exc
        self.schema = dataset.schema
        self.columns = list(self.schema.names)

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        pool = pa.default_memory_pool()
        try:
            for batch in parquet_batches(self._fs, self._path, self.chunk_rows, columns=columns)[1]:
                yield batch
                del batch
                # Arrow's allocator keeps freed pages for reuse: over a 10M-row window that held
                # ~200 MB more than the job ever used at once; hand them back after each chunk
                pool.release_unused()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {self.uri}: {exc}") from exc

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        present = [c for c in columns if c in self.columns]
        for batch in self._batches(present):
            yield batch.to_pandas()

    def _column(self, column: str) -> Iterator[pa.ChunkedArray]:
        """One column, a whole file at a time (one column chunk per row group: a single read each)."""
        try:
            for file in pads.dataset(self._path, filesystem=self._fs, format="parquet").files:
                with self._fs.open_input_file(file) as handle:
                    yield pq.ParquetFile(handle).read(columns=[column], use_threads=False).column(0)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {self.uri}: {exc}") from exc

    def numbers(self, column: str) -> np.ndarray:
        out = np.empty(self.rows, dtype=np.float64)
        kind = self.schema.field(column).type
        at = 0
        for values in self._column(column):
            if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
                chunk = values.cast(pa.float64()).to_numpy()  # nulls become NaN
            else:
                chunk = _numbers(values.to_pandas())
            out[at : at + len(chunk)] = chunk
            at += len(chunk)
            del values, chunk
        pa.default_memory_pool().release_unused()
        return out[:at]

    def value_counts(self, column: str) -> dict[Any, int]:
        counts: Counter = Counter()
        for values in self._column(column):
            for item in pc.value_counts(values).to_pylist():
                if item["values"] is not None:
                    counts[item["values"]] += item["counts"]
        return dict(counts)

    def series(self, column: str) -> pd.Series:
        return pd.concat([values.to_pandas() for values in self._column(column)], ignore_index=True)

    def feature_series(self, column: str) -> pd.Series:
        kind = self.schema.field(column).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return pd.Series(self.numbers(column), copy=False)
        return self.series(column)


def is_parquet(uri: str) -> bool:
    """A Parquet file or a folder of them (everything load_table reads that is not CSV)."""
    return not str(uri).lower().rstrip("/").endswith((".csv", ".csv.gz"))


def open_table(uri: str) -> Table:
    """Stream Parquet; read CSV whole (a CSV has no columns to read alone)."""
    return ParquetTable(uri) if is_parquet(uri) else FrameTable(load_table(uri))
