"""Gather the drift job's inputs: the reference, the contract, the model and the current window."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa

from mlstack.adapters.mlflow import Mlflow
from mlstack.core import payload
from mlstack.core.contract import DataContract, Feature, Target
from mlstack.core.errors import UsageError
from mlstack.core.model import LoadedModel, predict
from mlstack.monitoring.drift import reference as mlflow_reference
from mlstack.monitoring.drift.checks import LABEL_COLUMN, PREDICTION_COLUMNS
from mlstack.monitoring.drift.columns import Scorer
from mlstack.monitoring.drift.tables import FrameTable, ParquetTable, Table, open_table

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
    reference: Table
    current: Table
    loaded: LoadedModel | None
    since: datetime | None
    until: datetime | None
    registered: bool
    read_report: dict | None = None  # what the payload reader could not use (files, values)

    @property
    def scorer(self) -> Scorer | None:
        """Predict rows that carry no model outputs (a file of inputs only), with the version judged."""
        loaded = self.loaded
        if loaded is None:
            return None
        return lambda rows: predict(loaded.pipeline, rows, loaded.contract, loaded.threshold)


def _is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def contract_from_table(table: Table, name: str) -> DataContract:
    """A type-only contract for a reference without a registered model: numbers numeric, the rest categorical."""
    skip = set(PREDICTION_COLUMNS) | {LABEL_COLUMN} | set(payload.META_COLUMNS)
    if isinstance(table, ParquetTable):
        numeric = {field.name: _is_numeric(field.type) for field in table.schema}
    else:
        assert isinstance(table, FrameTable)
        frame = table.frame
        numeric = {
            str(column): pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
            for column in frame.columns
        }
    features = [
        Feature(name=column, type="numeric" if is_numeric else "categorical", nullable=True)
        for column, is_numeric in numeric.items()
        if column not in skip
    ]
    if not features:
        raise UsageError("the reference holds no feature columns")
    return DataContract(name=name, target=Target(name=LABEL_COLUMN), features=features)


def contract_from_frame(frame: pd.DataFrame, name: str) -> DataContract:
    """``contract_from_table`` for a DataFrame."""
    return contract_from_table(FrameTable(frame), name)


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
    reference: Table
    if reference_uri:
        try:
            reference = open_table(reference_uri)
        except UsageError as exc:
            raise UsageError(f"reference not found: {exc}") from exc
    elif is_registered:
        assert version is not None  # resolve_version returned it above
        reference = FrameTable(mlflow_reference.fetch_reference(registry, model, version))
    else:
        raise UsageError(
            f"no reference for model {model!r}: it is not in the MLflow registry; pass --reference URI"
        )
    contract = loaded.contract if loaded else contract_from_table(reference, model)
    version = str(version or "unknown")

    since = until = None
    read_report = None
    current: Table
    if current_uri:
        current = open_table(current_uri)
    else:
        until = now or datetime.now(UTC)
        since = until - window
        # the contract names positional columns (a reference file's column order when the model is
        # not registered) and types the values
        window_rows = payload.load_window(
            store,
            model,
            since,
            until,
            version=version if version != "unknown" else None,
            contract=contract,
        )
        read_report = window_rows.attrs.get("read_report")
        current = FrameTable(window_rows)
    return DriftInputs(
        model, version, contract, reference, current, loaded, since, until, is_registered, read_report
    )
