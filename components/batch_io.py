"""Chunked reading and writing for batch scoring: memory stays at about one chunk, whatever the input size.

Parquet is read one row group and ``chunk_rows`` rows at a time (``core.data.parquet_batches``); CSV is streamed with
``pyarrow.csv.open_csv``. Outputs are written row group by row group with a ``ParquetWriter`` to a
temporary object that is moved into place only when every chunk has been written, so a failed run
never leaves a half-written predictions file under the final name.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import storage
from mlstack.core.data import DataError, parquet_batches

log = logging.getLogger(__name__)

CSV_BLOCK_BYTES = 8 << 20  # one CSV block ≈ 50k rows of a typical 17-feature table


def default_rejects_uri(output_uri: str) -> str:
    """``.../predictions.parquet`` -> ``.../predictions.rejects.parquet``."""
    base = output_uri.rstrip("/")
    base = base[: -len(".parquet")] if base.lower().endswith(".parquet") else base
    return f"{base}.rejects.parquet"


def expand_uri(template: str, run_id: str, now: datetime | None = None) -> str:
    """Fill ``{run_id}`` and ``{date}`` (UTC, YYYY-MM-DD) so a recurring run writes a new file each time."""
    now = now or datetime.now(UTC)
    return template.replace("{run_id}", run_id).replace("{date}", now.strftime("%Y-%m-%d"))


def is_csv(uri: str) -> bool:
    return str(uri).lower().rstrip("/").endswith((".csv", ".csv.gz"))


@dataclass
class ChunkedInput:
    """An input table opened for streaming: its Arrow schema and a one-shot iterator of record batches."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]


def open_batches(uri: str, chunk_rows: int, text_columns: Sequence[str] = ()) -> ChunkedInput:
    """Open a CSV/Parquet file or Parquet directory (local or s3://) for reading in chunks.

    ``text_columns`` are read from CSV as text, so one malformed cell rejects its row instead of
    failing the whole read (CSV type inference looks only at the first block).
    """
    fs, path = storage.filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise DataError(f"no data at {uri}: check the path or the s3 endpoint/credentials")
    try:
        if is_csv(uri):
            return _open_csv(fs, path, uri, chunk_rows, list(text_columns))
        schema, batches = parquet_batches(fs, path, chunk_rows)
        return ChunkedInput(schema.remove_metadata(), _guarded(_without_metadata(batches), uri))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {uri}: {exc}") from exc


def _open_csv(fs, path: str, uri: str, chunk_rows: int, text_columns: list[str]) -> ChunkedInput:
    stream = fs.open_input_stream(path, compression="detect")
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in text_columns}, strings_can_be_null=True
        ),
    )

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    yield batch.slice(start, chunk_rows)
        finally:
            stream.close()

    return ChunkedInput(reader.schema, _guarded(batches(), uri))


def _without_metadata(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Drop the pandas metadata: it describes the input file, not the predictions written from it."""
    for batch in batches:
        yield batch.replace_schema_metadata(None)


def _guarded(batches: Iterator[pa.RecordBatch], uri: str) -> Iterator[pa.RecordBatch]:
    """Turn a parse error deep inside the file into one clear DataError."""
    try:
        yield from batches
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"cannot parse {uri}: {exc}; a column outside the data contract changed type part-way "
            "through the file: fix that column or convert the file to Parquet"
        ) from exc


class ParquetSink:
    """Write record batches to one Parquet file (local or s3://), published atomically on ``commit``."""

    def __init__(self, uri: str, schema: pa.Schema) -> None:
        self.uri = uri
        self.rows = 0
        self._fs, self._path = storage.filesystem(uri)
        parent, _, name = self._path.rpartition("/")
        self._tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
        if isinstance(self._fs, pafs.LocalFileSystem):
            self._fs.create_dir(parent, recursive=True)
        self._stream = self._fs.open_output_stream(self._tmp)
        self._writer = pq.ParquetWriter(self._stream, schema, compression="zstd")
        self.schema = schema

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def commit(self) -> str:
        self._writer.close()
        self._stream.close()
        self._fs.move(self._tmp, self._path)
        log.info("wrote %d rows to %s", self.rows, self.uri)
        return self.uri

    def abort(self) -> None:
        try:
            self._writer.close()
            self._stream.close()
        finally:
            try:
                self._fs.delete_file(self._tmp)
            except OSError:
                log.warning("could not remove temporary file %s", self._tmp)
