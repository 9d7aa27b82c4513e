"""Checks a batch run makes before any work starts: input, input columns, output folders.

``mlstack batch run`` calls them before the pipeline starts (exit 2, one line) and the scoring
step calls them again before it reads a row (the step may run elsewhere, e.g. on a cluster), so a
mistake costs seconds, not a whole scoring pass.
"""

from __future__ import annotations

import logging
import stat
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.fs as pafs

from mlstack.core import storage
from mlstack.core.data import DataError
from mlstack.core.errors import UsageError

log = logging.getLogger(__name__)

# what scoring writes besides the input's columns (the predictions file, then the rejects file)
PREDICTION_COLUMNS = ["row_number", "prediction", "probability", "model_name", "model_version"]
PREDICTION_COLUMNS += ["input_fingerprint", "run_id"]
REJECT_COLUMNS = ["row_number", "reject_reason"]


def check_input(uri: str) -> None:
    """The input exists and is a file or folder that can be read to its end (not a FIFO or device).

    A FIFO with no writer would block the first read forever; a device or socket is no table.
    """
    fs, path = storage.filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"no data at {uri}: check the path or the s3 endpoint/credentials")
    if isinstance(fs, pafs.LocalFileSystem) and info.type == pafs.FileType.Unknown:
        mode = _local_mode(path)
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise DataError(
            f"{uri} is not a regular file but {kind}: batch scoring reads its input twice "
            "(fingerprint, then scoring); write the data to a .csv or .parquet file first"
        )


def _local_mode(path: str) -> int:
    import os

    return os.stat(path).st_mode


def check_columns(schema: pa.Schema, uri: str) -> list[str]:
    """Refuse duplicate column names and input columns named like output columns.

    Returns the columns that will be replaced, when the input is an earlier output of batch
    scoring (all of its lineage columns, or a rejects file's ``row_number``/``reject_reason``):
    re-scoring it replaces them, and the caller says so. Any other clash would silently drop the
    user's column, so it is refused.
    """
    counts = Counter(schema.names)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise DataError(
            f"{uri} has duplicate column name(s) {duplicates}: every column needs its own name; "
            "rename or drop the extra one"
        )
    clashes = sorted(set(schema.names) & set(PREDICTION_COLUMNS + REJECT_COLUMNS))
    if not clashes:
        return []
    earlier_predictions = set(PREDICTION_COLUMNS) <= set(schema.names)
    earlier_rejects = set(REJECT_COLUMNS) <= set(schema.names)
    if earlier_predictions or earlier_rejects:
        return clashes
    raise DataError(
        f"{uri} has column(s) {clashes} named like the columns scoring writes "
        f"({', '.join(PREDICTION_COLUMNS)}; rejects: reject_reason); they would be replaced in the "
        "output: rename them in the input"
    )


def check_writable(uri: str) -> None:
    """A new file can be written where ``uri`` goes: write and delete a probe there.

    Locally the probe goes into the nearest folder that exists (the run creates the missing
    ones; nothing is created here); on S3 next to the object, so a missing bucket or a refused
    write shows up too. Permission, a read-only filesystem or a file in the way show up here,
    before the input is read.
    """
    fs, path = storage.filesystem(uri)
    folder = path.rpartition("/")[0] or "/"
    try:
        if isinstance(fs, pafs.LocalFileSystem):
            while fs.get_file_info(folder).type == pafs.FileType.NotFound and folder not in ("", "/"):
                folder = folder.rpartition("/")[0] or "/"
            if fs.get_file_info(folder).type != pafs.FileType.Directory:
                raise NotADirectoryError(f"{folder} is a file, not a folder")
        probe = f"{folder}/.mlstack-write-probe-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(probe) as stream:
            stream.write(b"")
        fs.delete_file(probe)
    except OSError as exc:  # pyarrow raises OSError (PermissionError, FileNotFoundError, ...) for all
        where = uri.rpartition("/")[0] if storage.is_s3(uri) else folder
        reason = " ".join(str(exc).split())
        raise UsageError(f"output folder {where} is not writable: {reason}") from exc
