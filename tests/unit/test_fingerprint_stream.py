"""The streaming fingerprint equals the whole-table fingerprint, so batch lineage matches training lineage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlstack.core.data import (
    Fingerprint,
    fingerprint,
    fingerprint_uri,
    iter_table_chunks,
    load_table,
    save_table,
)
from mlstack.core.generator import generate


def _awkward_table(rows: int = 1000) -> pd.DataFrame:
    """Columns whose pandas dtype depends on whether a null is present: nulls only in the last rows."""
    frame = generate(rows, seed=3)
    late_int = pd.array(np.arange(rows), dtype="Int64")
    late_int[-3:] = pd.NA
    frame["late_null_int"] = late_int
    flags = pd.array(np.arange(rows) % 2 == 0, dtype="boolean")
    flags[-2] = pd.NA
    frame["late_null_flag"] = flags
    return frame


def test_fingerprint_class_on_whole_frame_equals_fingerprint():
    frame = generate(500, seed=1)
    assert Fingerprint().update(frame).hexdigest() == fingerprint(frame)


def test_chunked_updates_equal_one_update():
    frame = generate(1000, seed=1)
    digest = Fingerprint()
    for start in range(0, len(frame), 137):
        digest.update(frame.iloc[start : start + 137])
    assert digest.hexdigest() == fingerprint(frame)


def test_a_chunk_with_other_dtypes_is_refused():
    digest = Fingerprint().update(pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(ValueError, match="differ"):
        digest.update(pd.DataFrame({"a": [1.5, 2.5]}))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_fingerprint_uri_equals_fingerprint_of_loaded_table(tmp_path, suffix):
    frame = _awkward_table()
    path = tmp_path / f"table{suffix}"
    if suffix == ".parquet":
        # several row groups, so chunks come from different fragments of the file
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=300)
    else:
        save_table(frame, str(path))
    whole = load_table(str(path))
    chunks = list(iter_table_chunks(str(path), chunk_rows=128))
    assert len(chunks) > 5
    assert [str(d) for d in chunks[0].dtypes] == [str(d) for d in whole.dtypes]
    assert fingerprint_uri(str(path), chunk_rows=128) == fingerprint(whole)


def test_fingerprint_uri_sees_a_changed_value(tmp_path):
    frame = generate(400, seed=2)
    save_table(frame, str(tmp_path / "a.parquet"))
    frame.loc[399, "credit_score"] += 1
    save_table(frame, str(tmp_path / "b.parquet"))
    assert fingerprint_uri(str(tmp_path / "a.parquet"), 100) != fingerprint_uri(
        str(tmp_path / "b.parquet"), 100
    )


def test_fingerprint_uri_on_parquet_written_without_pandas_metadata(tmp_path):
    """Plain Arrow int64/bool columns with a late null read whole as float64/object; chunks must agree."""
    rows = 1000
    ints = pa.array([*range(rows - 1), None], type=pa.int64())
    flags = pa.array([True] * (rows - 1) + [None], type=pa.bool_())
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"n": ints, "flag": flags, "x": pa.array(np.linspace(0, 1, rows))}), path)
    whole = load_table(str(path))
    assert str(whole["n"].dtype) == "float64" and str(whole["flag"].dtype) == "object"
    assert fingerprint_uri(str(path), chunk_rows=100) == fingerprint(whole)
