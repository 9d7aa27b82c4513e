"""``mlstack.core.data.fingerprint_uri`` of a Parquet input, hashed from Arrow columns.

The fingerprint is ``sha256(repr(dtypes) + pandas.util.hash_pandas_object(table, index=False))``
over the table ``load_table`` returns. Building that table in pandas costs more than scoring it
(every text cell becomes a Python string), so this module feeds pandas' own hash functions
(pandas@2.3 core/util/hashing.py ``hash_array``, ``combine_hash_arrays``) the very arrays pandas
would hold, straight from Arrow:

- numbers without nulls: the Arrow buffer as a NumPy array of the same dtype (no copy);
- text: each distinct value hashed once (``hash_array(..., categorize=False)``) and spread by
  its dictionary index, missing values as ``u8max`` — exactly what ``hash_array`` does for an
  object column (it factorizes first, ``categorize=True``) and for a Categorical;
- anything else (numbers with nulls, booleans, dates, ...): that column converted by pandas, as
  ``load_table`` converts it.

The dtypes are planned as ``core.data``'s chunked reader plans them (integer and boolean columns
holding a null anywhere widen to float64 / object), from the row groups' null counts when the
file records them. ``tests/unit/test_batch_fingerprint.py`` holds the two equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pandas.core.util.hashing import combine_hash_arrays, hash_array

from mlstack.core import storage
from mlstack.core.data import fingerprint_uri, parquet_batches

_WIDEN = {"int": "float64", "uint": "float64", "bool": "object"}
U8MAX = np.iinfo(np.uint64).max


def _null_counts(fs, path: str, names: list[str]) -> dict[str, int | None]:
    """Nulls per column from the files' row-group statistics (None when a file does not record them)."""
    counts: dict[str, int | None] = dict.fromkeys(names, 0)
    for file in pads.dataset(path, filesystem=fs, format="parquet").files:
        with fs.open_input_file(file) as handle:
            meta = pq.ParquetFile(handle).metadata
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        for group in range(meta.num_row_groups):
            for name in names:
                seen = counts[name]
                stats = meta.row_group(group).column(index[name]).statistics if name in index else None
                if seen is None or stats is None or not stats.has_null_count:
                    counts[name] = None
                else:
                    counts[name] = seen + stats.null_count
    return counts


def _plan(fs, path: str, schema: pa.Schema, chunk_rows: int) -> dict[str, str]:
    """The pandas dtype of each column in a whole-table read (``core.data._parquet_chunks``' plan)."""
    plan = {name: str(dtype) for name, dtype in schema.empty_table().to_pandas().dtypes.items()}
    candidates = [c for c, d in plan.items() if d.rstrip("0123456789") in _WIDEN]
    nulls = _null_counts(fs, path, candidates) if candidates else {}
    unknown = [c for c in candidates if nulls.get(c) is None]
    if unknown:  # no statistics: count the nulls by reading those columns
        for name in unknown:
            nulls[name] = 0
        for batch in parquet_batches(fs, path, chunk_rows, columns=unknown, use_threads=False)[1]:
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                nulls[name] = (nulls[name] or 0) + column.null_count
    for name in candidates:
        if nulls[name]:
            plan[name] = _WIDEN[plan[name].rstrip("0123456789")]
    return plan


def _text_hash(column: pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(column)
    uniques = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    hashed = hash_array(uniques, categorize=False) if len(uniques) else np.zeros(0, dtype=np.uint64)
    indices = encoded.indices
    if indices.null_count:
        hashed = np.append(hashed, np.uint64(U8MAX))
        indices = pc.fill_null(indices, len(hashed) - 1)
    return hashed.take(indices.to_numpy())


def _column_hash(column: pa.Array, dtype: str, convert) -> np.ndarray:
    kind = column.type
    if not column.null_count and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        values = column.to_numpy(zero_copy_only=False)
        if str(values.dtype) == dtype:
            return hash_array(values)
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and dtype in ("object", "category"):
        return _text_hash(column)
    series = convert()
    return hash_array(series.astype(dtype)._values if str(series.dtype) != dtype else series._values)


def _batch_hash(batch: pa.RecordBatch, plan: dict[str, str], metadata) -> np.ndarray:
    """hash_pandas_object(chunk, index=False) of the chunk load_table would give (columns in plan order)."""

    def converter(name: str):
        def convert() -> pd.Series:
            table = pa.Table.from_batches([batch.select([name])])
            return table.replace_schema_metadata(metadata).to_pandas()[name]

        return convert

    arrays: Iterator[np.ndarray] = (
        _column_hash(batch.column(name), plan[name], converter(name)) for name in plan
    )
    return combine_hash_arrays(arrays, len(plan))


def fingerprint_parquet(uri: str, chunk_rows: int) -> str:
    """``core.data.fingerprint_uri(uri)`` for a Parquet file or directory, without building pandas tables."""
    fs, path = storage.filesystem(uri)
    schema, batches = parquet_batches(fs, path, chunk_rows, use_threads=False)
    plan = _plan(fs, path, schema, chunk_rows)
    if not set(plan) <= set(schema.names):  # pandas renames columns (non-text names): its own path
        return fingerprint_uri(uri, chunk_rows)
    digest = hashlib.sha256()
    for number, batch in enumerate(batches):
        if number == 0:  # as Fingerprint.update: the dtypes go in with the first chunk
            digest.update(repr([(name, plan[name]) for name in plan]).encode())
        digest.update(_batch_hash(batch, plan, schema.metadata).tobytes())
    return f"sha256:{digest.hexdigest()}"
