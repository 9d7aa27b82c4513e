"""Batch scoring's vectorised check never lets through a row the contract's rule rejects.

``fast_conforming`` may only say True where ``mlstack.core.validation.row_reasons`` (the rule
training and serving apply, the expected value here) says ''. On clean rows it must also say True,
or batch scoring would lose its speed. Every kind of violation the contract knows is injected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlstack.components.batch_checks import arrow_features, conforming_features, fast_conforming, judge_chunk
from mlstack.core.contract import DataContract
from mlstack.core.generator import generate, loan_contract
from mlstack.core.validation import row_reasons

CONTRACT = loan_contract()


def _hostile(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = generate(rows, seed=seed)
    numeric = CONTRACT.numeric_features
    for name in numeric:
        frame[name] = frame[name].astype(float)
    picks = lambda: rng.choice(rows, rows // 40, replace=False)  # noqa: E731
    for name in numeric:
        feature = CONTRACT.feature(name)
        frame.loc[picks(), name] = np.nan
        frame.loc[picks(), name] = np.inf
        frame.loc[picks(), name] = -np.inf
        if feature.min is not None:
            frame.loc[picks(), name] = feature.min - 0.5
            frame.loc[picks(), name] = feature.min  # the bound itself conforms
        if feature.max is not None:
            frame.loc[picks(), name] = feature.max + 0.5
            frame.loc[picks(), name] = feature.max
        if feature.type == "integer":
            frame.loc[picks(), name] = 3.5
    for name in CONTRACT.categorical_features:
        frame[name] = frame[name].astype(object)
        frame.loc[picks(), name] = None
        frame.loc[picks(), name] = "atlantis"
        frame.loc[picks(), name] = ""
        frame.loc[picks(), name] = str(frame[name].dropna().iloc[0]).upper()
    return frame


@pytest.mark.parametrize("seed", range(5))
def test_fast_check_agrees_with_the_contract_rule(seed):
    frame = _hostile(4000, seed)
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    fast = fast_conforming(arrow_features(batch, CONTRACT), CONTRACT)
    assert fast is not None
    expected = (row_reasons(frame.reset_index(drop=True), CONTRACT) == "").to_numpy()
    assert 0 < expected.sum() < len(frame)  # both kinds of rows are there
    assert np.array_equal(fast, expected)  # never lets a bad row through, never doubts a good one


@pytest.mark.parametrize("seed", range(3))
def test_fast_check_agrees_feature_by_feature(seed):
    """Exact per feature: judge_chunk asks the contract rule only about the features a row breaks."""
    frame = _hostile(3000, 20 + seed).reset_index(drop=True)
    found = conforming_features(
        arrow_features(pa.RecordBatch.from_pandas(frame, preserve_index=False), CONTRACT), CONTRACT
    )
    assert found is not None
    for feature in CONTRACT.features:
        alone = DataContract.model_validate(CONTRACT.model_dump() | {"features": [feature.model_dump()]})
        expected = (row_reasons(frame, alone) == "").to_numpy()
        assert np.array_equal(found[feature.name], expected), feature.name


def test_judged_chunk_has_the_contract_reasons():
    frame = _hostile(3000, 9)
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    judged = judge_chunk(batch, CONTRACT)
    expected = row_reasons(frame.reset_index(drop=True), CONTRACT).to_numpy(dtype=object)
    assert list(judged.reasons) == list(expected)
    assert np.array_equal(judged.keep, expected == "")


def test_text_numbers_go_to_the_cell_by_cell_rule():
    frame = generate(200, seed=4)
    text = frame.astype({name: str for name in CONTRACT.numeric_features})
    text.loc[7, "credit_score"] = "lots"
    batch = pa.RecordBatch.from_pandas(text, preserve_index=False)
    assert fast_conforming(arrow_features(batch, CONTRACT), CONTRACT) is None
    judged = judge_chunk(batch, CONTRACT)
    assert judged.reasons[7] == "credit_score: expected integer value, found 'lots'"
    assert judged.keep.sum() == 199
    assert pa.types.is_floating(judged.features["credit_score"].type)
