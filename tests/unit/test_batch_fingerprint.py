"""Batch scoring's Arrow-side fingerprint equals ``fingerprint(load_table(uri))``: lineage unchanged.

Every expected value is ``mlstack.core.data.fingerprint`` of the table ``load_table`` reads (pandas'
own hashing of pandas' own frame); the tables carry what changes a pandas dtype or a hash: nulls in
integer, boolean, float and text columns (late, so only some chunks see them), an index stored by
pandas, categoricals, dates, several files, row groups smaller than the chunks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlstack.components.batch_fingerprint import fingerprint_parquet
from mlstack.core.data import fingerprint, load_table
from mlstack.core.generator import generate


def _awkward(rows: int = 3000, seed: int = 3) -> pd.DataFrame:
    frame = generate(rows, seed=seed)
    late_int = pd.array(np.arange(rows), dtype="Int64")
    late_int[-3:] = pd.NA
    frame["late_null_int"] = late_int
    flags = pd.array(np.arange(rows) % 2 == 0, dtype="boolean")
    flags[-2] = pd.NA
    frame["late_null_flag"] = flags
    frame["plain_flag"] = np.arange(rows) % 3 == 0
    frame.loc[frame.index[7::11], "region"] = None  # text with nulls
    frame.loc[frame.index[5::13], "annual_income"] = np.nan
    frame["empty_text"] = ""
    frame["grade"] = pd.Categorical(np.array(list("ABCD"))[np.arange(rows) % 4])
    frame["seen_at"] = pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC")
    frame["small_int"] = (np.arange(rows) % 7).astype(np.int32)
    return frame


@pytest.mark.parametrize("chunk_rows", [128, 1000, 100_000])
@pytest.mark.parametrize("index", [False, True])
def test_equals_the_fingerprint_of_the_loaded_table(tmp_path, chunk_rows, index):
    frame = _awkward()
    if index:
        frame.index = pd.Index(np.arange(len(frame)) * 3, name="row")
    path = tmp_path / "table.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=index), path, row_group_size=700)
    assert fingerprint_parquet(str(path), chunk_rows) == fingerprint(load_table(str(path)))


def test_equals_on_a_folder_of_files_and_without_pandas_metadata(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(3):
        table = pa.Table.from_pandas(_awkward(900, seed=part).drop(columns=["grade"]), preserve_index=False)
        pq.write_table(
            table.replace_schema_metadata(None), folder / f"part-{part}.parquet", row_group_size=250
        )
    assert fingerprint_parquet(str(folder), 400) == fingerprint(load_table(str(folder)))


def test_a_changed_cell_changes_it(tmp_path):
    frame = generate(500, seed=1)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "a.parquet")
    frame.loc[250, "loan_purpose"] = "yacht"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "b.parquet")
    assert fingerprint_parquet(str(tmp_path / "a.parquet"), 100) != fingerprint_parquet(
        str(tmp_path / "b.parquet"), 100
    )
