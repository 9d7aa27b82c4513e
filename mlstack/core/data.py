"""Load and save tables (CSV or Parquet, local or s3://) and fingerprint their content."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import storage
from mlstack.core.errors import UsageError


class DataError(UsageError, ValueError):
    """Data that cannot be loaded."""


def _format(uri: str) -> str:
    lowered = uri.lower().rstrip("/")
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    return "parquet"


def load_table(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV file, a Parquet file or a directory of Parquet files into a DataFrame."""
    uri = str(uri)
    fs, path = storage.filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"no data at {uri}: check the path or the s3 endpoint/credentials")
    try:
        if _format(uri) == "csv":
            with fs.open_input_stream(path, compression="detect") as stream:
                return pd.read_csv(io.BytesIO(stream.read()), usecols=columns)
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
        return dataset.to_table(columns=columns).to_pandas()
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot parse {uri}: {exc}") from exc


def save_table(df: pd.DataFrame, uri: str) -> str:
    """Write a DataFrame as CSV or Parquet (by extension); returns the URI."""
    uri = str(uri)
    if _format(uri) == "csv":
        storage.write_bytes(uri, df.to_csv(index=False).encode())
    else:
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buffer, compression="zstd")
        storage.write_bytes(uri, buffer.getvalue())
    return uri


class Fingerprint:
    """The incremental form of ``fingerprint``: feed a table's chunks in order, get the whole table's hash.

    Every row's hash depends on that row alone, so hashing chunk by chunk gives the same digest as
    hashing the whole frame, provided every chunk has the whole frame's columns and dtypes (a chunk
    with other dtypes is refused rather than silently hashed differently).
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._schema: list[tuple[str, str]] | None = None

    def update(self, chunk: pd.DataFrame) -> Fingerprint:
        schema = [(str(c), str(chunk[c].dtype)) for c in chunk.columns]
        if self._schema is None:
            self._schema = schema
            self._digest.update(repr(schema).encode())
        elif schema != self._schema:
            raise ValueError(f"chunk columns/dtypes {schema} differ from the first chunk's {self._schema}")
        hashed = pd.util.hash_pandas_object(chunk, index=False)
        self._digest.update(hashed.to_numpy().tobytes())
        return self

    def hexdigest(self) -> str:
        return f"sha256:{self._digest.hexdigest()}"


def fingerprint(df: pd.DataFrame) -> str:
    """A content hash of a table: same columns, dtypes and values in the same order ⇒ same hash.

    Independent of the file format, so the CSV and the Parquet copy of a dataset agree.
    ``fingerprint_uri`` computes the same hash for a file without loading it whole.
    """
    return Fingerprint().update(df).hexdigest()


def _common_dtype(dtypes: set[str]) -> str:
    """The dtype pandas gives a column whose chunks were parsed with ``dtypes`` (as ``read_csv`` merges them)."""
    if len(dtypes) == 1:
        return next(iter(dtypes))
    if dtypes <= {"int64", "float64"}:
        return "float64"
    return "object"


def iter_table_chunks(uri: str, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """Yield a table in chunks with exactly the dtypes ``load_table`` gives the whole table.

    Memory stays at about one chunk. Parquet: integer and boolean columns that hold a null anywhere
    become float64 / object in every chunk, as they do in a whole-table read (a cheap first pass
    over those columns counts the nulls). CSV: a first pass records each column's dtype per chunk
    and merges them the way ``pandas.read_csv`` merges its own internal chunks. (A CSV column that
    mixes numbers and text is the one case where even pandas' own result depends on chunk borders.)
    """
    uri = str(uri)
    fs, path = storage.filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise DataError(f"no data at {uri}: check the path or the s3 endpoint/credentials")
    try:
        if _format(uri) == "csv":
            yield from _csv_chunks(fs, path, chunk_rows)
        else:
            yield from _parquet_chunks(fs, path, chunk_rows)
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {uri}: {exc}") from exc


def _csv_chunks(fs: pafs.FileSystem, path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    seen: dict[str, set[str]] = {}
    with fs.open_input_stream(path, compression="detect") as stream:
        for chunk in pd.read_csv(stream, chunksize=chunk_rows):
            for column in chunk.columns:
                seen.setdefault(column, set()).add(str(chunk[column].dtype))
    plan = {column: _common_dtype(dtypes) for column, dtypes in seen.items()}
    with fs.open_input_stream(path, compression="detect") as stream:
        for chunk in pd.read_csv(stream, chunksize=chunk_rows):
            changed = {c: d for c, d in plan.items() if str(chunk[c].dtype) != d}
            yield chunk.astype(changed) if changed else chunk


def parquet_batches(
    fs: pafs.FileSystem,
    path: str,
    chunk_rows: int,
    columns: list[str] | None = None,
    use_threads: bool = True,
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, record batches) of a Parquet file or directory, read one file and one row group at a time.

    ``ParquetFile.iter_batches`` decodes ``chunk_rows`` rows at a time, so memory stays at about one
    chunk plus one compressed row group (a dataset scan would decode several row groups ahead).
    ``use_threads=False`` decodes on the calling thread: a third of the CPU time for the same rows.
    """
    dataset = pads.dataset(path, filesystem=fs, format="parquet")

    def batches() -> Iterator[pa.RecordBatch]:
        for file in dataset.files:
            with fs.open_input_file(file) as handle:
                parquet = pq.ParquetFile(handle)
                for group in range(parquet.num_row_groups):
                    for batch in parquet.iter_batches(
                        chunk_rows, row_groups=[group], columns=columns, use_threads=use_threads
                    ):
                        # files of one dataset may differ in column order: give every batch the dataset's
                        yield pa.RecordBatch.from_arrays(
                            [batch.column(name) for name in (columns or dataset.schema.names)],
                            schema=dataset.schema if columns is None else None,
                            names=columns,
                        )

    return dataset.schema, batches()


def _parquet_chunks(fs: pafs.FileSystem, path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    schema, _ = parquet_batches(fs, path, chunk_rows)  # carries the pandas metadata (e.g. nullable Int64)
    plan = {name: str(dtype) for name, dtype in schema.empty_table().to_pandas().dtypes.items()}
    # numpy int/bool columns turn float64/object in a whole-table read when they hold a null anywhere
    widen = {"int": "float64", "uint": "float64", "bool": "object"}
    candidates = [c for c, d in plan.items() if d.rstrip("0123456789") in widen]
    if candidates:
        for batch in parquet_batches(fs, path, chunk_rows, columns=candidates)[1]:
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                if column.null_count:
                    plan[name] = widen[plan[name].rstrip("0123456789")]
    for batch in parquet_batches(fs, path, chunk_rows)[1]:
        chunk = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata).to_pandas()
        changed = {c: d for c, d in plan.items() if str(chunk[c].dtype) != d}
        yield chunk.astype(changed) if changed else chunk


def fingerprint_uri(uri: str, chunk_rows: int = 100_000) -> str:
    """``fingerprint(load_table(uri))`` computed chunk by chunk, so a table larger than memory can be hashed."""
    digest = Fingerprint()
    for chunk in iter_table_chunks(uri, chunk_rows):
        digest.update(chunk)
    return digest.hexdigest()
