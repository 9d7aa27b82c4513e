"""Per-row contract checks for one chunk of a batch input, using the core validation rules.

``mlstack.core.validation.row_reasons`` judges every row the way training and the online predictor
do. The one thing added here: a numeric feature read as text (every CSV feature is read as text,
so a stray word cannot abort a streaming read) is parsed cell by cell, and a cell that is not a
number rejects its own row with ``expected <type> value, found '<cell>'`` instead of the whole column.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlstack.core.contract import DataContract
from mlstack.core.validation import row_reasons

REASON_SEPARATOR = "; "


def _is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _text_type(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def arrow_features(batch: pa.RecordBatch, contract: DataContract) -> dict[str, pa.Array]:
    """The contract's feature columns of a batch; text numbers that all parse become floats here.

    Arrow's cast is one vectorised pass; a column with any unparseable cell stays text and
    ``check_chunk`` parses it cell by cell, so that only the offending rows are rejected.
    """
    columns = {}
    for feature in contract.features:
        column = batch.column(feature.name)
        if not feature.is_categorical and _text_type(column.type):
            try:
                column = pc.cast(column, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        columns[feature.name] = column
    return columns


def features_frame(batch: pa.RecordBatch, contract: DataContract) -> pd.DataFrame:
    """``arrow_features`` as pandas."""
    return pa.table(arrow_features(batch, contract)).to_pandas()


def fast_conforming(features: dict[str, pa.Array], contract: DataContract) -> np.ndarray | None:
    """Rows that conform, judged on Arrow arrays in a few vector operations; None = no judgement."""
    per_feature = conforming_features(features, contract)
    if per_feature is None:
        return None
    rows = len(next(iter(features.values()))) if features else 0
    ok = np.ones(rows, dtype=bool)
    for good in per_feature.values():
        ok &= good
    return ok


def conforming_features(
    features: dict[str, pa.Array], contract: DataContract
) -> dict[str, np.ndarray] | None:
    """Per feature, the rows whose value conforms; None when a column cannot be judged here.

    True exactly where ``row_reasons`` (the rule training and serving apply) gives the row no
    reason for that feature: the same null, range, integer, finiteness and category rules, on the
    values pandas would see. Rows found False are judged by ``check_chunk``, which writes the
    reasons; a chunk with a column this cannot judge (text in a numeric column, a boolean or
    non-text category) goes to ``check_chunk`` whole. ``tests/unit/test_batch_fast_check.py``
    holds the two together, feature by feature.
    """
    rows = len(next(iter(features.values()))) if features else 0
    found: dict[str, np.ndarray] = {}
    for feature in contract.features:
        column = features[feature.name]
        if feature.is_categorical:
            categories = feature.categories
            if (
                feature.type == "boolean"
                or not _text_type(column.type)
                or (categories is not None and not all(isinstance(c, str) for c in categories))
            ):
                return None
            null = column.is_null().to_numpy(zero_copy_only=False)
            good = ~null if not feature.nullable else np.ones(rows, dtype=bool)
            if categories is not None:
                known = pc.is_in(column, value_set=pa.array(list(categories), pa.string()))
                good &= null | pc.fill_null(known, False).to_numpy(zero_copy_only=False)
            found[feature.name] = good
            continue
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            return None
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls -> NaN, as pandas
        null = np.isnan(values)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(values)
            if feature.type == "integer":
                good &= np.mod(values, 1) == 0
            if feature.min is not None:
                good &= values >= feature.min
            if feature.max is not None:
                good &= values <= feature.max
        found[feature.name] = (null & feature.nullable) | (~null & good)
    return found


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


def reason_counts_of(reasons: np.ndarray) -> Counter:
    """``reason_counts`` of a reasons array."""
    return reason_counts(pd.Series(reasons[reasons != ""], dtype=object))


@dataclass
class Judged:
    """One chunk judged: which rows conform, why the others do not, and the features to score."""

    keep: np.ndarray
    reasons: np.ndarray  # per row, '' when it conforms
    features: dict[str, pa.Array]  # the contract's features, numbers parsed from text where needed


def judge_chunk(batch: pa.RecordBatch, contract: DataContract) -> Judged:
    """Judge every row of ``batch``: the vectorised check first, ``check_chunk`` for the rest."""
    features = arrow_features(batch, contract)
    per_feature = conforming_features(features, contract)
    reasons = np.full(batch.num_rows, "", dtype=object)
    if per_feature is None:  # judged whole by the pandas rules; text numbers parsed cell by cell
        slow, parsed = check_chunk(pa.table(features).to_pandas(), contract)
        for feature in contract.features:
            if not feature.is_categorical and _text_type(features[feature.name].type):
                values = parsed[feature.name].to_numpy(dtype=np.float64, na_value=np.nan)
                features[feature.name] = pa.array(values, pa.float64(), from_pandas=True)
        reasons = slow.to_numpy(dtype=object)
        return Judged(reasons == "", reasons, features)
    fast = np.ones(batch.num_rows, dtype=bool)
    for good in per_feature.values():
        fast &= good
    if fast.all():
        return Judged(fast, reasons, features)
    # a few rows, and only the features they break: the pandas rules write the reasons (a
    # feature the fast check passed for these rows adds no reason, so leaving it out changes none)
    doubt = np.flatnonzero(~fast)
    broken = [f for f in contract.features if not per_feature[f.name][doubt].all()]
    subset = pa.table({f.name: features[f.name].take(doubt) for f in broken})
    slow, _ = check_chunk(subset.to_pandas(), contract.model_copy(update={"features": broken}))
    reasons[doubt] = slow.to_numpy(dtype=object)
    return Judged(reasons == "", reasons, features)
