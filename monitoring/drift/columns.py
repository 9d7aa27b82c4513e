"""Read each feature once, a column at a time: its contract checks and its side of the drift statistic.

The contract's rules are per column (``core.validation``), so a column alone is judged exactly as
the whole table would be: a numeric column through ``validate`` on that column, a categorical
one through ``row_reasons`` on its distinct values, weighted by their counts (a category's verdict
does not depend on the row). Memory holds one column of the window at a time, a 10M-row window
included. The model's outputs (``prediction``, ``probability``) and the feedback ``label`` are read
together, for prediction drift and performance; a table without outputs is scored chunk by chunk
with the model when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlstack.core.contract import DataContract, Feature
from mlstack.core.validation import row_reasons, validate
from mlstack.monitoring.drift import stats
from mlstack.monitoring.drift.checks import LABEL_COLUMN, PREDICTION_COLUMNS
from mlstack.monitoring.drift.tables import Table

# rows -> (0/1 predictions, probabilities); the model's one predict path
Scorer = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class ColumnRead:
    """One feature of one table: what its checks found, and its side of the statistic."""

    name: str
    rows: int
    missing: int  # missing values (an absent column: every row)
    broken: int  # rows breaking a contract rule, counted per rule as validate counts them
    problem: str | None  # the column is absent or of the wrong type: the table does not fit the contract
    side: stats.Side | None  # None when there is no value to compare

    @property
    def empty(self) -> bool:
        return self.side is None


def _alone(contract: DataContract, feature: Feature) -> DataContract:
    return contract.model_copy(update={"features": [feature]})


def read_column(table: Table, contract: DataContract, feature: Feature, reference: bool) -> ColumnRead:
    """Check one feature column of ``table`` and reduce it for the statistic, in one read."""
    name, rows = feature.name, table.rows
    if name not in table.columns:
        return ColumnRead(
            name=name, rows=rows, missing=rows, broken=0, problem=f"{name} (missing)", side=None
        )
    if feature.is_categorical:
        counts = table.value_counts(name)
        present = sum(counts.values())
        keys = pd.DataFrame({name: pd.Series(list(counts), dtype=object)})
        verdicts = row_reasons(keys, _alone(contract, feature)).to_numpy()
        broken = sum(count for count, reason in zip(counts.values(), verdicts, strict=True) if reason)
        if not feature.nullable:
            broken += rows - present
        side: stats.Side | None = stats.categorical_side(counts) if present else None
        return ColumnRead(
            name=name, rows=rows, missing=rows - present, broken=broken, problem=None, side=side
        )
    values = table.feature_series(name)
    report = validate(pd.DataFrame({name: values}), _alone(contract, feature), require_target=False)
    problem = next(
        (f"{name} ({v.message})" for v in report.violations if v.rule == "wrong_type"),
        None,
    )
    broken = sum(v.count for v in report.violations if v.rule != "wrong_type")
    missing = int(values.isna().sum())
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    del values
    reduced = stats.numeric_side(numbers, reference) if problem is None else None
    # nothing finite (all missing or infinite): no distribution to compare
    kept = reduced if reduced is not None and reduced.values.size else None
    return ColumnRead(name=name, rows=rows, missing=missing, broken=broken, problem=problem, side=kept)


def read_outputs(table: Table, contract: DataContract, scorer: Scorer | None = None) -> pd.DataFrame:
    """prediction / probability / label / target of every row (those the table has), scored when missing."""
    # a contract whose target is named like the feedback label column ("label") names it once
    candidates = dict.fromkeys((*PREDICTION_COLUMNS, LABEL_COLUMN, contract.target.name))
    kept = [c for c in candidates if c in table.columns]
    score = (
        scorer is not None
        and not all(c in table.columns for c in PREDICTION_COLUMNS)
        and all(name in table.columns for name in contract.feature_names)
    )
    if not kept and not score:
        return pd.DataFrame(index=range(table.rows))
    wanted = list(dict.fromkeys([*kept, *(contract.feature_names if score else [])]))
    parts = []
    for chunk in table.chunks(wanted):
        part = chunk[kept].copy()
        if score and len(chunk):
            assert scorer is not None
            part["prediction"], part["probability"] = scorer(chunk)
        parts.append(part.reset_index(drop=True))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(index=range(table.rows))
