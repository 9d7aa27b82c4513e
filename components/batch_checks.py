"""Per-row contract checks for one chunk of a batch input, using the core validation rules.

``mlstack.core.validation.row_reasons`` judges every row the way training and the online predictor
do. The one thing added here: a numeric feature read as text (every CSV feature is read as text,
so a stray word cannot abort a streaming read) is parsed cell by cell, and a cell that is not a
number rejects its own row with ``expected <type> value, found '<cell>'`` instead of the whole column.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlstack.core.contract import DataContract
from mlstack.core.validation import row_reasons

REASON_SEPARATOR = "; "


def _is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def features_frame(batch: pa.RecordBatch, contract: DataContract) -> pd.DataFrame:
    """The contract's feature columns of a batch as pandas; text numbers that all parse become floats here.

    Arrow's cast is one vectorised pass; a column with any unparseable cell stays text and
    ``check_chunk`` parses it cell by cell, so that only the offending rows are rejected.
    """
    columns = {}
    for feature in contract.features:
        column = batch.column(feature.name)
        if not feature.is_categorical and (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            try:
                column = pc.cast(column, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        columns[feature.name] = column
    return pa.table(columns).to_pandas()


def check_chunk(features: pd.DataFrame, contract: DataContract) -> tuple[pd.Series, pd.DataFrame]:
    """Return (per-row reasons, '' when the row conforms; the features with text numbers parsed).

    ``features`` holds the contract's feature columns of one chunk (a missing column is the
    caller's error to raise: it would reject every row).
    """
    parsed = features.copy()
    type_errors: dict[str, pd.Series] = {}
    for feature in contract.features:
        if feature.is_categorical or not _is_text(features[feature.name]):
            continue
        text = features[feature.name]
        stripped = text.astype("string").str.strip()
        numbers = pd.to_numeric(stripped, errors="coerce").astype(float)
        bad = numbers.isna() & text.notna()
        parsed[feature.name] = numbers
        if bad.any():
            type_errors[feature.name] = bad
    reasons = row_reasons(parsed, contract)
    for name, bad in type_errors.items():
        feature_type = contract.feature(name).type
        prefix = f"{name}: "
        for index in bad[bad].index:
            # the unparseable cell reads as missing to row_reasons: say what it really was instead
            others = [r for r in reasons.at[index].split(REASON_SEPARATOR) if r and not r.startswith(prefix)]
            cell = features.at[index, name]
            reasons.at[index] = REASON_SEPARATOR.join(
                [f"{prefix}expected {feature_type} value, found {cell!r}", *others]
            )
    return reasons, parsed


def reason_counts(reasons: pd.Series) -> Counter:
    """How many rejected rows each rule hit (the offending value stripped, so counts aggregate)."""
    counts: Counter = Counter()
    for text in reasons[reasons != ""]:
        for part in text.split(REASON_SEPARATOR):
            counts[part.split(", found ")[0]] += 1
    return counts


def ok_mask(reasons: pd.Series) -> np.ndarray:
    return (reasons == "").to_numpy()
