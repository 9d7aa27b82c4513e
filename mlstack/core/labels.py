"""The one mapping from a raw label (target value or feedback label) to 1 (positive) / 0 / unknown.

Training (``mlstack.components.train``), the drift job's performance check, the canary analysis and the
sink's ``/feedback`` validation all call ``to_binary`` / ``binary_series``, so a label means the
same everywhere. Rules, in order:

- missing (None, NaN, NA) → unknown;
- equal to the contract's positive value (as text, case-insensitive) → 1;
- one of the contract's declared ``classes`` other than the positive one → 0;
- booleans, the numbers 0 and 1 and the texts ``0``/``1``/``true``/``false`` → themselves;
- anything else (``7``, ``-1.5``, ``"maybe"``) → unknown.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mlstack.core.contract import Target

_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def to_binary(value: Any, target: Target | None = None) -> int | None:
    """1, 0, or None (missing or not a label of this target)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if not isinstance(value, str | int | float | bool):
        return None
    text = _text(value)
    if target is not None:
        if text == _text(target.positive):
            return 1
        if target.classes and text in {_text(c) for c in target.classes}:
            return 0
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    return None


def binary_series(values: pd.Series, target: Target | None = None) -> pd.Series:
    """``to_binary`` over a column (computed once per distinct value), as nullable Int64."""
    distinct = {}
    for value in pd.unique(values.dropna()):
        distinct[value] = to_binary(value, target)
    mapped = [distinct.get(v) if not pd.isna(v) else None for v in values]
    return pd.Series(mapped, index=values.index, dtype="Int64")


def label_problem(value: Any, target: Target | None) -> str | None:
    """Why ``value`` cannot be a label of ``target`` (None when it can): the sink's /feedback rule."""
    if isinstance(value, bool) or value is None:
        return None if value is not None else "label is required"
    if not isinstance(value, str | int | float):
        return "label must be a number, string or boolean"
    if to_binary(value, target) is not None:
        return None
    allowed = ["0", "1", "true", "false"]
    if target is not None:
        allowed = [str(target.positive), *[str(c) for c in target.classes or []], *allowed]
    return f"label {value!r} is not a class of this model's target; allowed: {sorted(set(allowed))}"
