"""Validate a table against a data contract: a readable report of every violation.

``validate`` judges a whole dataset (a missing column or a wrong type always fails; value
violations fail when their share in a column passes the tolerance). ``row_reasons`` gives, for
each row, why it breaks the contract (empty string when it does not), so online requests and batch
rejects use exactly the same rules as training validation.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstack.core.contract import DataContract, Feature

FATAL_RULES = ("missing_column", "wrong_type", "not_a_number", "missing_target", "target_classes")


@dataclass
class Violation:
    column: str
    rule: str
    count: int
    share: float
    message: str
    examples: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    rows: int
    tolerance: float
    violations: list[Violation]

    @property
    def failures(self) -> list[Violation]:
        return [v for v in self.violations if v.rule in FATAL_RULES or v.share > self.tolerance]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.passed:
            return f"{self.rows} rows conform to the contract ({len(self.violations)} tolerated violation(s))"
        return "; ".join(f"column {v.column!r}: {v.message}" for v in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "violations": [asdict(v) | {"fails": v in self.failures} for v in self.violations],
        }

    def to_html(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        color = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4%}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(v.column),
                html.escape(v.rule),
                v.count,
                v.share,
                "fails" if v in self.failures else "tolerated",
                html.escape(v.message),
            )
            for v in self.violations
        )
        table = (
            "<table><tr><th>column</th><th>rule</th><th>rows</th><th>share</th><th>verdict</th>"
            f"<th>detail</th></tr>{rows}</table>"
            if self.violations
            else "<p>No violations.</p>"
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Data validation</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            f"<h1>Data validation: <span style='color:{color}'>{status}</span></h1>"
            f"<p>{self.rows} rows, tolerance {self.tolerance:.2%} out-of-contract rows per column.</p>"
            f"{table}</body></html>"
        )


def _numeric(series: pd.Series) -> pd.Series | None:
    """The column as floats, or None when its non-null values are not numbers."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    converted = pd.to_numeric(series, errors="coerce")
    if (converted.isna() & series.notna()).any():
        return None
    return converted.astype(float)


def _feature_masks(series: pd.Series, feature: Feature) -> tuple[dict[str, pd.Series], str | None]:
    """Boolean masks of offending rows per rule, or a type error message."""
    masks: dict[str, pd.Series] = {}
    null = series.isna()
    if not feature.nullable:
        masks["null_not_allowed"] = null
    if feature.is_categorical:
        if feature.categories is not None:
            as_text = series.astype("string")
            if feature.type == "boolean":
                as_text = as_text.str.capitalize()
            allowed = set(feature.categories)
            masks["unknown_category"] = ~null & ~as_text.isin(allowed).fillna(False).astype(bool)
        return masks, None
    values = _numeric(series)
    if values is None:
        converted = pd.to_numeric(series, errors="coerce")
        unparsable = converted.isna() & series.notna()
        if unparsable.sum() == series.notna().sum():  # no value is a number: the column's type is wrong
            bad = series[unparsable]
            return masks, f"expected {feature.type} values, found e.g. {bad.astype(str).head(3).tolist()}"
        # some cells are text in a numeric column: count those rows only (as batch rejects them)
        masks["not_a_number"] = unparsable
        values = converted.astype(float)
    if feature.type == "integer":
        masks["not_integer"] = ~null & (np.mod(values.fillna(0), 1) != 0)
    if feature.min is not None:
        masks["below_min"] = ~null & (values < feature.min)
    if feature.max is not None:
        masks["above_max"] = ~null & (values > feature.max)
    if not np.isfinite(values.dropna()).all():
        masks["not_finite"] = ~null & ~np.isfinite(values.fillna(0))
    return masks, None


RULE_TEXT = {
    "not_a_number": "text where the contract says a number",
    "null_not_allowed": "missing value where the contract says not nullable",
    "unknown_category": "value outside the allowed categories",
    "not_integer": "non-integer value for an integer feature",
    "below_min": "value below the allowed minimum",
    "above_max": "value above the allowed maximum",
    "not_finite": "infinite value",
}


def _rule_message(rule: str, feature: Feature) -> str:
    text = RULE_TEXT[rule]
    if rule == "below_min":
        text += f" {feature.min}"
    elif rule == "above_max":
        text += f" {feature.max}"
    elif rule == "unknown_category":
        text += f" {feature.categories}"
    return text


def validate(
    df: pd.DataFrame, contract: DataContract, tolerance: float = 0.0, require_target: bool = True
) -> ValidationReport:
    """Check every contract rule on every column; see the module docstring for what fails."""
    rows = len(df)
    violations: list[Violation] = []
    for feature in contract.features:
        if feature.name not in df.columns:
            violations.append(
                Violation(feature.name, "missing_column", rows, 1.0, "required column is missing")
            )
            continue
        series = df[feature.name]
        masks, type_error = _feature_masks(series, feature)
        if type_error:
            violations.append(Violation(feature.name, "wrong_type", rows, 1.0, type_error))
            continue
        for rule, mask in masks.items():
            count = int(mask.sum())
            if count:
                examples = series[mask].astype(str).head(3).tolist()
                violations.append(
                    Violation(
                        feature.name,
                        rule,
                        count,
                        count / max(rows, 1),
                        _rule_message(rule, feature),
                        examples,
                    )
                )
    if require_target:
        target = contract.target.name
        if target not in df.columns:
            violations.append(Violation(target, "missing_target", rows, 1.0, "target column is missing"))
        else:
            classes = df[target].dropna().unique()
            if len(classes) != 2:
                violations.append(
                    Violation(
                        target,
                        "target_classes",
                        rows,
                        1.0,
                        f"target needs exactly two classes, found {len(classes)}",
                    )
                )
            missing = int(df[target].isna().sum())
            if missing:
                violations.append(
                    Violation(target, "null_not_allowed", missing, missing / rows, "missing target value")
                )
    return ValidationReport(rows=rows, tolerance=tolerance, violations=violations)


def row_reasons(df: pd.DataFrame, contract: DataContract) -> pd.Series:
    """Per row: '; '-joined reasons it breaks the contract, '' when it conforms.

    A column missing or of the wrong type breaks every row.
    """
    reasons = pd.Series([""] * len(df), index=df.index, dtype=object)

    def add(mask: pd.Series | np.ndarray, text: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            current = reasons[mask]
            reasons[mask] = np.where(current == "", text, current + "; " + text)

    for feature in contract.features:
        if feature.name not in df.columns:
            add(np.ones(len(df), dtype=bool), f"{feature.name}: required column is missing")
            continue
        masks, type_error = _feature_masks(df[feature.name], feature)
        if type_error:
            add(np.ones(len(df), dtype=bool), f"{feature.name}: {type_error}")
            continue
        for rule, mask in masks.items():
            add(mask, f"{feature.name}: {_rule_message(rule, feature)}")
    return reasons
