"""Load and save tables (CSV or Parquet, local or s3://) and fingerprint their content."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
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
    if info.type == storage.pafs.FileType.NotFound:
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


def fingerprint(df: pd.DataFrame) -> str:
    """A content hash of a table: same columns, dtypes and values in the same order ⇒ same hash.

    Independent of the file format, so the CSV and the Parquet copy of a dataset agree.
    """
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(df[c].dtype)) for c in df.columns]).encode())
    hashed = pd.util.hash_pandas_object(df, index=False)
    digest.update(hashed.to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"
