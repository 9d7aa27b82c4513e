"""Run the Evidently 0.7 report with pinned methods and read the scores back out of its snapshot."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift

from mlstack.core.contract import DataContract
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift.checks import PinnedMethod, PredictionOutput

log = logging.getLogger(__name__)


@dataclass
class EvidentlyScores:
    """What the job reads back from the snapshot."""

    features: dict[str, float]
    drifted_count: int
    drifted_share: float
    prediction: float | None


def _frame(data: pd.DataFrame, contract: DataContract, prediction: PredictionOutput) -> pd.DataFrame:
    columns = {}
    for feature in contract.features:
        column = data[feature.name]
        if feature.is_categorical:
            columns[feature.name] = column.astype(object).where(column.notna(), None)
        else:
            columns[feature.name] = pd.to_numeric(column, errors="coerce").astype(float)
    if prediction.column == "probability":
        columns["probability"] = pd.to_numeric(data["probability"], errors="coerce").astype(float)
    elif prediction.column == "prediction":  # the label, as a category ("0"/"1"; missing stays None)
        label = pd.to_numeric(data["prediction"], errors="coerce")
        columns["prediction"] = label.map(lambda v: None if pd.isna(v) else str(int(v))).astype(object)
    return pd.DataFrame(columns, index=data.index)


def build_report(
    contract: DataContract, pinned: dict[str, PinnedMethod], config: DriftConfig, prediction: PredictionOutput
) -> Report:
    """The report: pinned per-feature ValueDrift, the drifted-columns count and prediction drift.

    Missing shares and contract breaks are computed on all rows by the job (drift_checks), not here.
    """
    features = contract.feature_names
    metrics = [
        DriftedColumnsCount(
            columns=features,
            drift_share=config.drift_share,
            per_column_method={name: pinned[name].method for name in features},
            per_column_threshold={name: pinned[name].threshold for name in features},
        )
    ]
    metrics += [
        ValueDrift(column=name, method=pinned[name].method, threshold=pinned[name].threshold)
        for name in features
    ]
    if prediction.column is not None and prediction.pinned is not None:
        metrics.append(
            ValueDrift(
                column=prediction.column,
                method=prediction.pinned.method,
                threshold=prediction.pinned.threshold,
            )
        )
    return Report(metrics)


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    contract: DataContract,
    pinned: dict[str, PinnedMethod],
    config: DriftConfig,
    prediction: PredictionOutput,
    *,
    timestamp: datetime | None = None,
    metadata: dict | None = None,
    tags: list[str] | None = None,
) -> tuple[Snapshot, EvidentlyScores]:
    """Run Evidently on (already sampled) frames; returns the snapshot and the scores in it."""
    numeric, categorical = contract.numeric_features, contract.categorical_features
    if prediction.column == "probability":
        numeric = [*numeric, "probability"]
    elif prediction.column == "prediction":
        categorical = [*categorical, "prediction"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = build_report(contract, pinned, config, prediction)
    snapshot = report.run(
        Dataset.from_pandas(_frame(current, contract, prediction), data_definition=definition),
        Dataset.from_pandas(_frame(reference, contract, prediction), data_definition=definition),
        timestamp=timestamp,
        metadata=metadata or {},
        tags=tags or [],
    )
    return snapshot, read_scores(snapshot, contract.feature_names, prediction.column)


def read_scores(snapshot: Snapshot, features: list[str], prediction_column: str | None) -> EvidentlyScores:
    """Pull per-feature drift scores, the drifted count/share and the prediction score from a snapshot."""
    scores: dict[str, float] = {}
    prediction = None
    drifted_count, drifted_share = 0, 0.0
    for item in snapshot.dict()["metrics"]:
        config = item["config"]
        kind = config.get("type", "")
        if kind.endswith(":ValueDrift"):
            if config["column"] == prediction_column:
                prediction = float(item["value"])
            else:
                scores[config["column"]] = float(item["value"])
        elif kind.endswith(":DriftedColumnsCount"):
            drifted_count = int(item["value"]["count"])
            drifted_share = float(item["value"]["share"])
    missing = [name for name in features if name not in scores]
    if missing:
        raise RuntimeError(f"Evidently snapshot lacks drift scores for {missing}")
    return EvidentlyScores(scores, drifted_count, drifted_share, prediction)
