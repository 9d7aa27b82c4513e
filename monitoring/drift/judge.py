"""Judge a column's drift on every row, with the job's own statistics or, for other methods, Evidently's."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mlstack.core.contract import Feature
from mlstack.monitoring.drift import stats
from mlstack.monitoring.drift.checks import PinnedMethod, PredictionOutput
from mlstack.monitoring.drift.tables import Table

log = logging.getLogger(__name__)


def judge_feature(
    feature: Feature,
    reference: stats.Side,
    current: stats.Side,
    method: PinnedMethod,
    tables: tuple[Table, Table],
) -> stats.ColumnDrift:
    """The pinned method's verdict on one feature, on all rows of both sides (``tables``: reference, current)."""
    numeric = not feature.is_categorical
    if method.method in stats.OWN_METHODS:
        return stats.column_drift(feature.name, reference, current, method.method, method.threshold, numeric)
    return evidently_drift(
        feature.name,
        tables[0].series(feature.name),
        tables[1].series(feature.name),
        (reference, current),
        method,
        numeric,
    )


def judge_prediction(
    reference: pd.DataFrame, current: pd.DataFrame, output: PredictionOutput
) -> stats.ColumnDrift | None:
    """Drift of the model output ``output`` names: the probability (numeric) or the label (a category)."""
    if output.column is None or output.pinned is None:
        return None
    column, method = output.column, output.pinned
    numeric = column == "probability"
    if numeric:
        # copies: numeric_side sorts its array in place, and these frames are read again below
        sides: tuple[stats.Side, stats.Side] = (
            stats.numeric_side(
                pd.to_numeric(reference[column], errors="coerce").to_numpy(np.float64, copy=True)
            ),
            stats.numeric_side(
                pd.to_numeric(current[column], errors="coerce").to_numpy(np.float64, copy=True)
            ),
        )
        series = (reference[column], current[column])
    else:  # 0/1 labels as categories "0"/"1", whatever dtype the log or the reference stored them in
        labels = [_label_text(frame[column]) for frame in (reference, current)]
        sides = tuple(stats.categorical_side(s.value_counts().to_dict()) for s in labels)  # type: ignore[assignment]
        series = (labels[0], labels[1])
    if method.method in stats.OWN_METHODS:
        return stats.column_drift(column, sides[0], sides[1], method.method, method.threshold, numeric)
    return evidently_drift(column, series[0], series[1], sides, method, numeric)


def _label_text(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return numbers.astype(np.int64).astype(str)


def evidently_drift(
    column: str,
    reference: pd.Series,
    current: pd.Series,
    sides: tuple[stats.Side, stats.Side],
    method: PinnedMethod,
    numeric: bool,
) -> stats.ColumnDrift:
    """A method this job does not compute itself: Evidently's registered test on the full columns."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if numeric else ColumnType.Categorical

    def clean(series: pd.Series) -> pd.Series:  # what get_one_column_drift hands the test
        values = pd.to_numeric(series, errors="coerce") if numeric else series.astype(object)
        return values.replace([-np.inf, np.inf], np.nan).dropna()

    ref, cur = clean(reference), clean(current)
    test = get_stattest(ref, cur, kind, method.method)
    outcome = test(ref, cur, kind, method.threshold)
    log.info(
        "column %s: %s computed by Evidently's own test on %d + %d rows",
        column,
        method.method,
        len(ref),
        len(cur),
    )
    ref_plot, cur_plot = stats.distributions(*sides)
    return stats.ColumnDrift(
        column=column,
        kind="num" if numeric else "cat",
        method=method.method,
        threshold=method.threshold,
        score=float(outcome.drift_score),
        drifted=bool(outcome.drifted),
        reference=ref_plot,
        current=cur_plot,
    )
