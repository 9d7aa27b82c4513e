"""Chunked reading and writing for batch scoring: memory stays at about one chunk, whatever the input size.

Parquet is read one row group and ``chunk_rows`` rows at a time (``core.data.parquet_batches``); CSV is streamed with
``pyarrow.csv.open_csv``. Outputs are written row group by row group with a ``ParquetWriter`` to a
temporary object; the predictions and rejects files are moved into place only when both have been
written whole, so a failed run (a full disk included) leaves neither a half-written file nor a
temporary one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlstack.core import storage
from mlstack.core.data import DataError, parquet_batches
from mlstack.core.errors import MlstackError

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
        # decoding on this thread: batch scoring is measured per core, and Arrow's decode threads
        # cost three times the CPU for the same rows (bench/results/batch.md)
        schema, batches = parquet_batches(fs, path, chunk_rows, use_threads=False)
        return ChunkedInput(schema.remove_metadata(), _guarded(_without_metadata(batches), uri))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {uri}: {exc}") from exc


def input_schema(uri: str) -> pa.Schema:
    """The column names and types of an input, read from its head (CSV) or metadata (Parquet)."""
    fs, path = storage.filesystem(uri)
    try:
        if is_csv(uri):
            with fs.open_input_stream(path, compression="detect") as stream:
                options = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
                return pacsv.open_csv(stream, read_options=options).schema
        return parquet_batches(fs, path, 1)[0]
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
    """Write record batches to one Parquet file (local or s3://) under a temporary name.

    ``finish`` writes the footer, ``publish`` moves the file into place, ``abort`` removes it and
    never raises. ``commit_together`` publishes several sinks only when all of them finished, so a
    full disk or a lost bucket never leaves a temporary file or one file of a failed run behind.
    """

    def __init__(self, uri: str, schema: pa.Schema) -> None:
        self.uri = uri
        self.rows = 0
        self.schema = schema
        self._fs, self._path = storage.filesystem(uri)
        parent, _, name = self._path.rpartition("/")
        self._tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
        self._writer: pq.ParquetWriter | None = None
        self._stream = None
        self._published = False
        with self._failure("open"):
            if isinstance(self._fs, pafs.LocalFileSystem):
                self._fs.create_dir(parent, recursive=True)
            self._stream = self._fs.open_output_stream(self._tmp)
            # dictionary pages for text only: numbers rarely repeat, and trying costs a quarter of the write
            text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            self._writer = pq.ParquetWriter(self._stream, schema, compression="zstd", use_dictionary=text)

    @contextmanager
    def _failure(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:  # ENOSPC, EACCES, EROFS, an S3 error: one sentence that names the file
            reason = " ".join(str(exc).split())
            raise MlstackError(
                f"cannot {doing} {self.uri}: {reason}; nothing was published and the temporary files "
                "were removed: free space or fix access, then run again"
            ) from exc

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            assert self._writer is not None
            with self._failure("write"):
                self._writer.write_table(table)
            self.rows += table.num_rows

    def finish(self) -> None:
        """Write the footer and close the temporary file (the step a full disk most often fails)."""
        with self._failure("write"):
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def publish(self) -> str:
        with self._failure("publish"):
            self._fs.move(self._tmp, self._path)
        self._published = True
        log.info("wrote %d rows to %s", self.rows, self.uri)
        return self.uri

    def abort(self) -> None:
        """Remove what this sink wrote (the temporary file, or the published file); never raises."""
        for close in (self._writer, self._stream):
            if close is not None:
                try:
                    close.close()
                except OSError:
                    pass  # the footer of a full disk: the file goes anyway
        self._writer = self._stream = None
        target = self._path if self._published else self._tmp
        try:
            self._fs.delete_file(target)
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove %s", target)


def commit_together(*sinks: ParquetSink) -> None:
    """Finish every sink, then publish them in order; on any failure remove them all and re-raise."""
    try:
        for sink in sinks:
            sink.finish()
        for sink in sinks:
            sink.publish()
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
