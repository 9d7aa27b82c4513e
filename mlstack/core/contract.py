"""The data contract: which columns a dataset has, their types and allowed values.

One YAML file describes features (type, range or categories, nullable), the target and the id
column. The same contract validates training data, online requests and batch inputs, so a row is
judged by one rule everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlstack.core.errors import UsageError
from mlstack.core.strict import reject_unknown

if TYPE_CHECKING:  # pandas is imported where a table is read: the serving process never needs it
    import pandas as pd

FeatureType = Literal["numeric", "integer", "categorical", "boolean"]


class ContractError(UsageError, ValueError):
    """A contract file that cannot be used."""


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo ("mni: 50") is an error, never ignored

    name: str
    type: FeatureType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    description: str | None = None

    @property
    def is_categorical(self) -> bool:
        return self.type in ("categorical", "boolean")


class Target(BaseModel):
    """The label column: which raw value is the positive class, and (optionally) both classes.

    ``classes`` lets a label such as ``"benign"`` be read as the negative class; without it only the
    positive value, 0/1 and true/false can be mapped (``mlstack.core.labels``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    positive: str | int | bool = 1
    classes: list[str | int | bool] | None = None


class DataContract(BaseModel):
    """Columns a dataset must have and what values they may take."""

    model_config = ConfigDict(extra="forbid")

    name: str = "dataset"
    id_column: str | None = None
    target: Target
    features: list[Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> DataContract:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique, repeated: {duplicates}")
        if self.target.name in names:
            raise ValueError(f"target {self.target.name!r} is also listed as a feature")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if not f.is_categorical]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_categorical]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_yaml(self) -> str:
        text: str = yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False)
        return text

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    @classmethod
    def from_yaml(cls, text: str, source: str = "data contract") -> DataContract:
        """Parse a contract; an unknown key names ``source``, the key and the closest valid key."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ContractError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc
        if not isinstance(data, dict):
            raise ContractError(f"{source}: a data contract must be a mapping with target and features")
        reject_unknown(cls, data, source, ContractError)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'contract'}: {e['msg']}" for e in exc.errors()
            )
            raise ContractError(f"{source}: invalid data contract: {problems}") from exc

    @classmethod
    def load(cls, path: str | Path) -> DataContract:
        file = Path(path)
        if file.is_dir():
            raise ContractError(f"{file}: is a directory, expected a contract YAML file")
        if not file.is_file():
            raise ContractError(f"{file}: contract file not found")
        return cls.from_yaml(file.read_text(), source=str(file))


# ---------------------------------------------------------------- inference


def infer_contract(
    df: pd.DataFrame,
    target: str,
    id_column: str | None = None,
    name: str = "dataset",
    max_categories: int = 50,
) -> DataContract:
    """Draft a contract from a table: observed ranges, categories and nullability.

    Numeric ranges are widened by 10% of the observed span so new data within a plausible band
    passes; review the draft before relying on it.
    """
    import pandas as pd

    if target not in df.columns:
        raise ContractError(f"target column {target!r} not in data; columns: {list(df.columns)}")
    if id_column and id_column not in df.columns:
        raise ContractError(f"id column {id_column!r} not in data")
    features: list[Feature] = []
    for col in df.columns:
        if col in (target, id_column):
            continue
        series = df[col]
        nullable = bool(series.isna().any())
        if pd.api.types.is_bool_dtype(series):
            features.append(
                Feature(name=col, type="boolean", nullable=nullable, categories=["False", "True"])
            )
        elif pd.api.types.is_numeric_dtype(series):
            values = series.dropna()
            if values.empty:
                features.append(Feature(name=col, type="numeric", nullable=True))
                continue
            lo, hi = float(values.min()), float(values.max())
            span = hi - lo
            is_int = pd.api.types.is_integer_dtype(series) or bool(np.all(np.mod(values, 1) == 0))
            margin = 0.1 * span
            if is_int:
                lo, hi = float(np.floor(lo - margin)), float(np.ceil(hi + margin))
            else:
                lo, hi = lo - margin, hi + margin
            if float(values.min()) >= 0 and lo < 0:
                lo = 0.0  # a non-negative quantity stays non-negative
            features.append(
                Feature(name=col, type="integer" if is_int else "numeric", nullable=nullable, min=lo, max=hi)
            )
        else:
            cats = sorted(series.dropna().astype(str).unique().tolist())
            if len(cats) > max_categories:
                raise ContractError(
                    f"column {col!r} has {len(cats)} distinct text values (> {max_categories}); "
                    "drop it or encode it before training"
                )
            features.append(Feature(name=col, type="categorical", nullable=nullable, categories=cats))
    if not features:
        raise ContractError("no feature columns left after removing the target and id columns")
    positive = _infer_positive(df[target])
    classes = [v.item() if hasattr(v, "item") else v for v in df[target].dropna().unique().tolist()]
    return DataContract(
        name=name,
        id_column=id_column,
        target=Target(name=target, positive=positive, classes=sorted(classes, key=str)),
        features=features,
    )


def _infer_positive(target: pd.Series) -> str | int | bool:
    values = target.dropna().unique().tolist()
    if len(values) != 2:
        raise ContractError(
            f"target {target.name!r} must have exactly two classes for binary classification, found {len(values)}"
        )
    if set(values) <= {0, 1} or set(values) <= {False, True}:
        return type(values[0])(1) if not isinstance(values[0], (np.bool_, bool)) else True
    counts = target.value_counts()
    minority = counts.idxmin()  # the rarer class is the one to detect
    if isinstance(minority, (np.integer,)):
        return int(minority)
    if isinstance(minority, (np.bool_,)):
        return bool(minority)
    return cast("str | int | bool", minority)  # a label as pandas holds it
