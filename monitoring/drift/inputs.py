"""Gather the drift job's inputs: the reference, the contract, the model and the current window."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlstack.adapters.mlflow import Mlflow
from mlstack.core import payload
from mlstack.core.contract import DataContract, Feature, Target
from mlstack.core.data import load_table
from mlstack.core.errors import UsageError
from mlstack.core.model import LoadedModel, predict
from mlstack.monitoring.drift import reference as mlflow_reference
from mlstack.monitoring.drift.checks import LABEL_COLUMN, PREDICTION_COLUMNS

log = logging.getLogger(__name__)

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d`` -> timedelta; UsageError otherwise."""
    match = _WINDOW.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--window {text!r} is not a duration like 15m, 1h or 2d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass
class DriftInputs:
    model: str
    version: str
    contract: DataContract
    reference: pd.DataFrame
    current: pd.DataFrame
    loaded: LoadedModel | None
    since: datetime | None
    until: datetime | None
    registered: bool
    read_report: dict | None = None  # what the payload reader could not use (files, values)


def contract_from_frame(frame: pd.DataFrame, name: str) -> DataContract:
    """A type-only contract for a reference without a registered model: numbers numeric, the rest categorical."""
    skip = set(PREDICTION_COLUMNS) | {LABEL_COLUMN} | set(payload.META_COLUMNS)
    features = [
        Feature(
            name=str(column),
            type="numeric"
            if pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
            else "categorical",
            nullable=True,
        )
        for column in frame.columns
        if column not in skip
    ]
    if not features:
        raise UsageError("the reference holds no feature columns")
    return DataContract(name=name, target=Target(name=LABEL_COLUMN), features=features)


def _with_predictions(
    frame: pd.DataFrame, loaded: LoadedModel | None, contract: DataContract
) -> pd.DataFrame:
    """Score rows that lack ``prediction``/``probability`` with the model's one predict path."""
    if frame.empty or all(c in frame.columns for c in PREDICTION_COLUMNS) or loaded is None:
        return frame
    if any(name not in frame.columns for name in contract.feature_names):
        return frame  # the schema check reports it
    predictions, probabilities = predict(loaded.pipeline, frame, contract, loaded.threshold)
    frame = frame.copy()
    frame["prediction"], frame["probability"] = predictions, probabilities
    return frame


def gather(
    model: str,
    version: str | None,
    *,
    registry: Mlflow,
    window: timedelta,
    reference_uri: str | None,
    current_uri: str | None,
    store: str,
    now: datetime | None = None,
) -> DriftInputs:
    """Load everything one run needs; raises UsageError (exit 2) when the reference cannot be found."""
    is_registered = mlflow_reference.registered(registry, model)
    loaded = None
    if is_registered:
        version = mlflow_reference.resolve_version(registry, model, version)
        loaded = registry.load_model(f"{model}/{version}")
    if reference_uri:
        try:
            reference = load_table(reference_uri)
        except UsageError as exc:
            raise UsageError(f"reference not found: {exc}") from exc
    elif is_registered:
        assert version is not None  # resolve_version returned it above
        reference = mlflow_reference.fetch_reference(registry, model, version)
    else:
        raise UsageError(
            f"no reference for model {model!r}: it is not in the MLflow registry; pass --reference URI"
        )
    contract = loaded.contract if loaded else contract_from_frame(reference, model)
    version = str(version or "unknown")

    since = until = None
    read_report = None
    if current_uri:
        current = load_table(current_uri)
    else:
        until = now or datetime.now(UTC)
        since = until - window
        # the contract names positional columns (a reference file's column order when the model is
        # not registered) and types the values
        current = payload.load_window(
            store,
            model,
            since,
            until,
            version=version if version != "unknown" else None,
            contract=contract,
        )
        read_report = current.attrs.get("read_report")
    reference = _with_predictions(reference, loaded, contract)
    current = _with_predictions(current, loaded, contract)
    return DriftInputs(
        model, version, contract, reference, current, loaded, since, until, is_registered, read_report
    )
