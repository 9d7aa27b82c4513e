"""Pure pieces of the drift job: pinned methods, the output judged for prediction drift, performance.

Everything here takes DataFrames and settings and returns plain data; Evidently, storage and
Prometheus live in the shell modules (``report``, ``job``, ``metrics`` of this package).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlstack.core.contract import DataContract
from mlstack.core.labels import binary_series
from mlstack.core.settings import DriftConfig

PREDICTION_COLUMNS = ("prediction", "probability")
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class PinnedMethod:
    """The drift method and threshold fixed for one column before any data is sampled."""

    method: str
    threshold: float


def pin_methods(
    distinct: dict[str, int], contract: DataContract, config: DriftConfig
) -> dict[str, PinnedMethod]:
    """Choose each feature's drift method from its contract type and the reference alone.

    ``distinct`` holds the number of distinct finite reference values of numeric features. Those
    with at most ``config.low_cardinality`` are binned like categories (Evidently makes the same
    choice for references above 1000 rows, counting both sides); the choice never depends on
    the current window, so a small window cannot switch it.
    """
    pinned = {}
    for feature in contract.features:
        categorical = feature.is_categorical
        if not categorical and feature.name in distinct:
            categorical = distinct[feature.name] <= config.low_cardinality
        if categorical:
            pinned[feature.name] = PinnedMethod(config.categorical_method, config.categorical_threshold)
        else:
            pinned[feature.name] = PinnedMethod(config.numeric_method, config.numeric_threshold)
    return pinned


@dataclass(frozen=True)
class PredictionOutput:
    """The model output prediction drift is judged on, and what became of the other outputs."""

    column: str | None  # "probability", "prediction" or None (no output to judge)
    pinned: PinnedMethod | None
    outputs: dict[str, str]  # output column -> "judged" or why it was not


def _present(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].notna() if column in frame.columns else pd.Series(False, index=frame.index)


def prediction_output(
    reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig
) -> PredictionOutput:
    """Judge the probability when every current answer carries one, else the predicted label.

    The predictor returns probabilities only when a client asks for them, so a window of ordinary
    traffic holds the label alone; a window where only some clients asked would judge a biased
    share of rows on the probability, so the label (every answer has it) is judged then too. The
    label is a category: ``categorical_method`` / ``categorical_threshold``.
    """
    outputs: dict[str, str] = {}
    labelled = _present(current, "prediction")
    with_probability = _present(current, "probability")
    if not with_probability.any():
        outputs["probability"] = "absent: no current row carries it"
    elif not with_probability[labelled].all():
        outputs["probability"] = (
            f"partial: {int(with_probability[labelled].sum())} of {int(labelled.sum())} responses carry it; "
            "the predicted label is judged instead"
        )
    elif not _present(reference, "probability").any():
        outputs["probability"] = "absent from the reference"
    else:
        outputs["probability"] = "judged"
        return PredictionOutput(
            "probability", PinnedMethod(config.prediction_method, config.prediction_threshold), outputs
        )
    if not labelled.any():
        outputs["prediction"] = "absent: no current row carries it"
    elif not _present(reference, "prediction").any():
        outputs["prediction"] = "absent from the reference"
    else:
        outputs["prediction"] = "judged"
        return PredictionOutput(
            "prediction", PinnedMethod(config.categorical_method, config.categorical_threshold), outputs
        )
    return PredictionOutput(None, None, outputs)


def _classification_scores(labels: pd.Series, predictions: pd.Series, probabilities: pd.Series) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    labels = labels.astype(int)
    scores = {"accuracy": float(accuracy_score(labels, predictions.astype(int))), "roc_auc": None}
    if labels.nunique() == 2 and probabilities.notna().all():
        scores["roc_auc"] = float(roc_auc_score(labels, probabilities.astype(float)))
    return scores


def performance(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    contract: DataContract,
    config: DriftConfig,
) -> dict:
    """Online (labelled current rows) versus offline (reference) accuracy and ROC AUC.

    ``degraded`` is True when enough rows are labelled and accuracy or ROC AUC fell by more than
    the configured drops. ROC AUC matters: a concept drift that lowers the base rate can *raise*
    accuracy of a mostly-negative classifier while ranking quality collapses.
    """
    result: dict[str, Any] = {
        "labeled_rows": 0,
        "online": None,
        "offline": None,
        "accuracy_drop": None,
        "roc_auc_drop": None,
        "degraded": None,
    }
    target = contract.target.name
    if target in reference.columns and all(c in reference.columns for c in PREDICTION_COLUMNS):
        ref_labels = binary_series(reference[target], contract.target)
        known = ref_labels.notna()
        if known.any():
            result["offline"] = _classification_scores(
                ref_labels[known], reference.loc[known, "prediction"], reference.loc[known, "probability"]
            )
    label_column = LABEL_COLUMN if LABEL_COLUMN in current.columns else target
    if label_column not in current.columns or not all(c in current.columns for c in PREDICTION_COLUMNS):
        return result
    labels = binary_series(current[label_column], contract.target)
    known = labels.notna() & current["prediction"].notna()
    result["labeled_rows"] = int(known.sum())
    if result["labeled_rows"] < config.min_labeled or result["offline"] is None:
        return result
    online = _classification_scores(
        labels[known], current.loc[known, "prediction"], current.loc[known, "probability"]
    )
    result["online"] = online
    offline = result["offline"]
    result["accuracy_drop"] = offline["accuracy"] - online["accuracy"]
    degraded = result["accuracy_drop"] > config.max_accuracy_drop
    if online["roc_auc"] is not None and offline["roc_auc"] is not None:
        result["roc_auc_drop"] = offline["roc_auc"] - online["roc_auc"]
        degraded = degraded or result["roc_auc_drop"] > config.max_roc_auc_drop
    result["degraded"] = bool(degraded)
    return result
