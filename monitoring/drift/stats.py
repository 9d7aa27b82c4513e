"""Exact drift statistics on every row: the numbers Evidently 0.7.23 computes, without its per-column cost.

For each column the drift job pins a method and a threshold (``checks.pin_methods``). Evidently's
``ValueDrift`` computes the statistic through ``get_one_column_drift``
(evidently@0.7.23 legacy/calculations/data_drift.py): it drops NaN and ±inf on each side, then

- ``wasserstein`` (legacy/calculations/stattests/wasserstein_distance_norm.py):
  ``scipy.stats.wasserstein_distance(reference, current) / max(np.std(reference), 0.001)``,
  drift when the score is >= the threshold;
- ``jensenshannon`` (stattests/jensenshannon.py): ``scipy.spatial.distance.jensenshannon`` of the
  two sides' shares per value (``stattests/utils.get_binned_data``: per distinct value, or for a
  numeric column with more than 20 distinct reference values per bin of a Sturges histogram over
  both sides), drift when >= the threshold.

Both are computed here on sorted arrays and value counts. The Wasserstein sum is scipy 1.17's
``_cdf_distance`` term for term (same sorted values, same deltas, same CDF counts at every
non-tied point, same ``np.vecdot``), so the score is the same float; the rest of Evidently's work
per column (correlations, scatter aggregates, plots over raw rows) is what made it slow and is not
needed for a verdict. Any other method is handed to Evidently's own registered test on the full
columns (exact by construction, at Evidently's speed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

OWN_METHODS = ("wasserstein", "jensenshannon")
JS_HISTOGRAM_MIN_VALUES = (
    20  # get_binned_data: a numeric column with more distinct reference values is binned
)
WASSERSTEIN_MIN_NORM = 0.001


@dataclass(frozen=True, kw_only=True)
class NumericSide:
    """One side of a numeric column: its finite values sorted, plus what the statistics need."""

    values: np.ndarray  # sorted, finite, float64
    std: float  # np.std of the finite values in their original order (Evidently's norm); reference only
    distinct: int  # distinct finite values; reference only (0 on the current side)


@dataclass(frozen=True, kw_only=True)
class CategoricalSide:
    """One side of a categorical column: count per non-missing value."""

    counts: Mapping[object, int]

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))


Side = NumericSide | CategoricalSide


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """Histogram (numeric: bin edges, counts) or value counts (categorical) for the report's plot."""

    x: list
    y: list[int]


@dataclass(frozen=True, kw_only=True)
class ColumnDrift:
    """The verdict on one column, with the distributions the report plots."""

    column: str
    kind: str  # "num" | "cat" (Evidently's column type names)
    method: str
    threshold: float
    score: float
    drifted: bool
    reference: Distribution
    current: Distribution


def numeric_side(raw: np.ndarray, reference: bool = True) -> NumericSide:
    """Reduce a float column (NaN = missing) to its finite values, sorted.

    ``raw`` is sorted in place when it holds only finite values: pass an array nobody reads again.
    The reference side also gets its spread and distinct count (the current side needs neither).
    """
    values = np.asarray(raw, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    std, distinct = 0.0, 0
    if reference and values.size:
        # Evidently: max(float(np.std(reference_data)), 0.001) on the pandas Series, in row order
        std = float(np.std(pd.Series(values, copy=False)))
    values.sort()  # in place: the caller's array is not needed again
    if reference and values.size:
        distinct = int(np.count_nonzero(np.diff(values))) + 1
    return NumericSide(values=values, std=std, distinct=distinct)


def categorical_side(counts: Mapping[object, int]) -> CategoricalSide:
    return CategoricalSide(counts={k: int(v) for k, v in counts.items() if v})


def wasserstein_normed(reference: NumericSide, current: NumericSide) -> float:
    """scipy.stats.wasserstein_distance(reference, current) / max(std(reference), 0.001), exactly.

    scipy merges both samples (mergesort), takes the gaps between successive values and, at each
    value, the share of each sample at or below it (``searchsorted(..., 'right')``). Here the merge
    comes from one ``searchsorted`` of the reference into the sorted current, and the shares from
    running counts: at a value followed by a larger one the running count is exactly scipy's
    count; at a tied value the gap is 0, so the term is 0 in both.
    """
    u, v = reference.values, current.values
    n, m = u.size, v.size
    # positions of the reference values in the merged order (after equal current values)
    at = np.searchsorted(v, u, side="right") + np.arange(n)
    from_u = np.zeros(n + m, dtype=bool)
    from_u[at] = True
    merged = np.empty(n + m, dtype=np.float64)
    merged[from_u] = u
    merged[~from_u] = v
    deltas = np.diff(merged)
    u_count = np.cumsum(from_u[:-1])
    v_count = np.arange(1, n + m, dtype=np.int64) - u_count
    distance = float(np.vecdot(np.abs(u_count / n - v_count / m), deltas))
    return distance / max(reference.std, WASSERSTEIN_MIN_NORM)


def _sturges_edges(low: float, high: float, size: int) -> np.ndarray:
    """np.histogram_bin_edges(both sides, bins="sturges") from their range and size (numpy 2.4)."""
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / (np.log2(size) + 1.0)
    bins = int(np.ceil((high - low) / width)) if width else 1
    return np.linspace(low, high, bins + 1, endpoint=True)


def sorted_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram(values, edges)[0] for sorted ``values`` (the last bin includes its right edge)."""
    cumulative = np.concatenate(
        [np.searchsorted(values, edges[:-1], "left"), np.searchsorted(values, edges[-1:], "right")]
    )
    return np.diff(cumulative)


def _value_counts(side: NumericSide) -> dict[object, int]:
    keys, counts = np.unique(side.values, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def jensenshannon(reference: Side, current: Side) -> float:
    """Evidently's Jensen-Shannon distance (natural log) of the two sides' shares."""
    from scipy.spatial import distance

    if isinstance(reference, NumericSide) and isinstance(current, NumericSide):
        if reference.distinct > JS_HISTOGRAM_MIN_VALUES:
            low = min(reference.values[0], current.values[0])
            high = max(reference.values[-1], current.values[-1])
            edges = _sturges_edges(float(low), float(high), reference.values.size + current.values.size)
            ref_share = sorted_histogram(reference.values, edges) / reference.values.size
            cur_share = sorted_histogram(current.values, edges) / current.values.size
            return float(distance.jensenshannon(ref_share, cur_share))
        ref_counts, ref_total = _value_counts(reference), reference.values.size
        cur_counts, cur_total = _value_counts(current), current.values.size
    else:
        assert isinstance(reference, CategoricalSide) and isinstance(current, CategoricalSide)
        ref_counts, ref_total = dict(reference.counts), reference.total
        cur_counts, cur_total = dict(current.counts), current.total
    keys = list(set(ref_counts) | set(cur_counts))
    ref_share = np.array([ref_counts.get(key, 0) / ref_total for key in keys])
    cur_share = np.array([cur_counts.get(key, 0) / cur_total for key in keys])
    return float(distance.jensenshannon(ref_share, cur_share))


def _plot_edges(reference: NumericSide, current: NumericSide) -> np.ndarray:
    """Equal-width plot bins over both sides (Sturges' count: ~21 bins for a million values)."""
    low = min(float(reference.values[0]), float(current.values[0]))
    high = max(float(reference.values[-1]), float(current.values[-1]))
    return _sturges_edges(low, high, reference.values.size + current.values.size)


def distributions(reference: Side, current: Side) -> tuple[Distribution, Distribution]:
    """What the report plots: a shared histogram (numeric) or value counts (categorical) per side."""
    if isinstance(reference, NumericSide) and isinstance(current, NumericSide):
        if not reference.values.size or not current.values.size:
            empty = Distribution(x=[], y=[])
            return empty, empty
        edges = _plot_edges(reference, current)
        return tuple(  # type: ignore[return-value]
            Distribution(x=edges.tolist(), y=sorted_histogram(side.values, edges).tolist())
            for side in (reference, current)
        )
    assert isinstance(reference, CategoricalSide) and isinstance(current, CategoricalSide)
    return tuple(  # type: ignore[return-value]
        Distribution(x=list(side.counts), y=list(side.counts.values())) for side in (reference, current)
    )


def column_drift(
    column: str, reference: Side, current: Side, method: str, threshold: float, numeric: bool
) -> ColumnDrift:
    """The pinned method's score and verdict on one column (both sides non-empty)."""
    if method == "wasserstein":
        assert isinstance(reference, NumericSide) and isinstance(current, NumericSide)
        score = wasserstein_normed(reference, current)
    elif method == "jensenshannon":
        score = jensenshannon(reference, current)
    else:
        raise ValueError(f"{method!r} is computed by Evidently's own test (stats.OWN_METHODS)")
    ref_plot, cur_plot = distributions(reference, current)
    return ColumnDrift(
        column=column,
        kind="num" if numeric else "cat",
        method=method,
        threshold=threshold,
        score=score,
        drifted=bool(score >= threshold),
        reference=ref_plot,
        current=cur_plot,
    )
