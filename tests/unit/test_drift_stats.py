"""The drift job's own statistics equal Evidently 0.7.23's registered tests, float for float.

The expected values come from Evidently's own stat-test functions (the ones ``ValueDrift`` calls
through ``get_one_column_drift``) on the same data, cleaned as it cleans it (±inf and NaN dropped).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.core import ColumnType

from mlstack.monitoring.drift import stats


def _clean(values) -> pd.Series:
    return pd.Series(values).replace([np.inf, -np.inf], np.nan).dropna()


def _numeric_cases():
    rng = np.random.default_rng(11)
    for ref_rows, cur_rows in [(50_000, 200_000), (1_200, 900), (3_000, 150)]:
        ref = rng.lognormal(10, 1, ref_rows)
        cur = rng.lognormal(10.05, 1.1, cur_rows)
        ref[::97], cur[::13], cur[5::31] = np.nan, np.inf, -np.inf
        yield f"continuous-{ref_rows}", ref, cur
        yield f"rounded-{ref_rows}", np.round(ref, -3), np.round(cur, -3)  # many ties across the sides
        yield (
            f"integers-{ref_rows}",
            rng.integers(0, 40, ref_rows).astype(float),
            rng.integers(0, 45, cur_rows).astype(float),
        )
        yield (
            f"few-values-{ref_rows}",
            rng.integers(0, 4, ref_rows).astype(float),
            rng.integers(1, 5, cur_rows).astype(float),
        )
    yield "constant-reference", np.full(2000, 3.0), np.linspace(0, 6, 5000)


@pytest.mark.parametrize(
    ("name", "ref", "cur"), list(_numeric_cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_numeric_scores_are_evidentlys(name, ref, cur):
    expected_w = _wasserstein_distance_norm(_clean(ref), _clean(cur), ColumnType.Numerical, 0.1)[0]
    expected_js = _jensenshannon(_clean(ref), _clean(cur), ColumnType.Numerical, 0.1)[0]
    ref_side, cur_side = stats.numeric_side(ref.copy()), stats.numeric_side(cur.copy())
    assert stats.wasserstein_normed(ref_side, cur_side) == expected_w  # the same float, not approx
    assert stats.jensenshannon(ref_side, cur_side) == pytest.approx(expected_js, rel=1e-12, abs=1e-15)


def test_categorical_score_is_evidentlys():
    rng = np.random.default_rng(3)
    values = np.array(["north", "south", "east", "west", None], dtype=object)
    ref = pd.Series(rng.choice(values, 5000, p=[0.3, 0.3, 0.2, 0.15, 0.05]))
    cur = pd.Series(rng.choice(values[[0, 1, 2, 4]], 8000))
    expected = _jensenshannon(ref.dropna(), cur.dropna(), ColumnType.Categorical, 0.1)[0]
    ref_side = stats.categorical_side(ref.value_counts().to_dict())
    cur_side = stats.categorical_side(cur.value_counts().to_dict())
    assert stats.jensenshannon(ref_side, cur_side) == pytest.approx(expected, rel=1e-12)


def test_sturges_edges_are_numpys():
    values = np.random.default_rng(5).normal(size=12_345)
    assert np.array_equal(
        np.histogram_bin_edges(values, bins="sturges"),
        stats._sturges_edges(values.min(), values.max(), values.size),
    )
    edges = np.histogram_bin_edges(values, bins=17)
    assert np.array_equal(stats.sorted_histogram(np.sort(values), edges), np.histogram(values, edges)[0])


def test_verdict_follows_the_pinned_threshold():
    ref = stats.numeric_side(np.linspace(0, 1, 2000))
    cur = stats.numeric_side(np.linspace(0.2, 1.2, 2000))
    drift = stats.column_drift("x", ref, cur, "wasserstein", 0.1, numeric=True)
    assert drift.score == pytest.approx(0.2 / np.std(np.linspace(0, 1, 2000)), rel=1e-6)  # a shift of 0.2
    assert drift.drifted is True
    assert stats.column_drift("x", ref, cur, "wasserstein", 0.8, numeric=True).drifted is False
    assert sum(drift.current.y) == 2000 and len(drift.current.x) == len(drift.current.y) + 1
