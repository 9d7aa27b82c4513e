"""The drift job's Prometheus metrics: one definition list, rendering from a result, Pushgateway I/O.

Every series is pushed in one group per model version (grouping key ``model`` + ``version``), so a
PUT replaces the whole group: a run with too little data leaves no stale drift verdict behind.
Groups of versions that no longer serve (not champion/challenger) are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

import httpx
from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway

from mlstack.core.errors import MlstackError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricDef:
    name: str
    help: str
    labels: tuple[str, ...] = ()


FEATURE_DRIFT_SCORE = MetricDef(
    "mlstack_feature_drift_score", "Drift score of one feature (pinned method)", ("feature", "method")
)
FEATURE_DRIFTED = MetricDef(
    "mlstack_feature_drifted", "1 when the feature's score passed its threshold", ("feature",)
)
FEATURE_MISSING_SHARE = MetricDef(
    "mlstack_feature_missing_share", "Share of missing values in the current window", ("feature",)
)
FEATURE_OUT_OF_CONTRACT = MetricDef(
    "mlstack_feature_out_of_contract_share", "Share of current rows breaking the data contract", ("feature",)
)
DRIFTED_SHARE = MetricDef("mlstack_drifted_features_share", "Share of features whose distribution drifted")
PREDICTION_DRIFT = MetricDef(
    "mlstack_prediction_drift_score",
    "Drift score of the model's output: the probability, or the label when answers carry no probability",
    ("column", "method"),
)
PREDICTION_DRIFTED = MetricDef("mlstack_prediction_drifted", "1 when prediction drift passed its threshold")
DRIFT_DETECTED = MetricDef(
    "mlstack_drift_detected", "1 when the inputs drifted (distribution or missingness)"
)
ROWS = MetricDef("mlstack_drift_rows", "Rows in the current window")
INSUFFICIENT = MetricDef("mlstack_drift_insufficient_data", "1 when the window had fewer rows than required")
LAST_SUCCESS = MetricDef(
    "mlstack_drift_last_success_timestamp_seconds",
    "Unix time the drift job last finished (ok or insufficient data)",
)
NOTHING_TO_DO = MetricDef(
    "mlstack_drift_nothing_to_do",
    "1 when the run found no version to judge (no champion in the registry yet; version label none)",
)
ONLINE_ACCURACY = MetricDef("mlstack_online_accuracy", "Accuracy on labelled rows of the window")
OFFLINE_ACCURACY = MetricDef("mlstack_offline_accuracy", "Accuracy on the reference snapshot")
ONLINE_ROC_AUC = MetricDef("mlstack_online_roc_auc", "ROC AUC on labelled rows of the window")
OFFLINE_ROC_AUC = MetricDef("mlstack_offline_roc_auc", "ROC AUC on the reference snapshot")
LABELED_ROWS = MetricDef("mlstack_labeled_rows", "Labelled rows in the window")
# a drift result's status: judged; too few rows for a verdict; no version to judge yet (before the
# first deploy), which also has its own version label
DriftStatus = Literal["ok", "insufficient_data", "nothing_to_do"]
OK_STATUS: Final[DriftStatus] = "ok"
INSUFFICIENT_STATUS: Final[DriftStatus] = "insufficient_data"
NOTHING_TO_DO_STATUS: Final[DriftStatus] = "nothing_to_do"
NO_VERSION = "none"

PERFORMANCE_DEGRADED = MetricDef(
    "mlstack_performance_degraded",
    "1 when online accuracy or ROC AUC fell below offline by more than allowed",
)


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(bool(value))


def registry_for(result: dict, finished_at: float) -> CollectorRegistry:
    """A registry holding the series of one job result (see ``drift_job.run`` for its shape)."""
    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}

    def put(definition: MetricDef, value, **labels) -> None:
        # a gauge is registered only when it gets a value: an unlabelled Gauge would export 0,
        # i.e. "no drift", for a run that never judged drift
        if value is None:
            return
        if definition.name not in gauges:
            gauges[definition.name] = Gauge(
                definition.name, definition.help, definition.labels, registry=registry
            )
        gauge = gauges[definition.name]
        (gauge.labels(**labels) if labels else gauge).set(float(value))

    put(ROWS, result["rows"])
    put(LAST_SUCCESS, finished_at)
    if result["status"] == NOTHING_TO_DO_STATUS:
        put(NOTHING_TO_DO, 1.0)
        return registry
    put(INSUFFICIENT, float(result["status"] == INSUFFICIENT_STATUS))
    if result["status"] != OK_STATUS:
        return registry
    put(DRIFTED_SHARE, result["drifted_share"])
    put(DRIFT_DETECTED, _flag(result["drift_detected"]))
    for feature, entry in result["features"].items():
        put(FEATURE_DRIFT_SCORE, entry["score"], feature=feature, method=entry["method"])
        put(FEATURE_DRIFTED, _flag(entry["drifted"]), feature=feature)
        put(FEATURE_MISSING_SHARE, entry["missing_share"]["current"], feature=feature)
        put(FEATURE_OUT_OF_CONTRACT, entry["out_of_contract_share"], feature=feature)
    prediction = result.get("prediction_drift")
    if prediction:
        put(PREDICTION_DRIFT, prediction["score"], column=prediction["column"], method=prediction["method"])
        put(PREDICTION_DRIFTED, _flag(prediction["drifted"]))
    perf = result.get("performance") or {}
    put(LABELED_ROWS, perf.get("labeled_rows"))
    put(PERFORMANCE_DEGRADED, _flag(perf.get("degraded")))
    for side, acc, auc in (
        ("online", ONLINE_ACCURACY, ONLINE_ROC_AUC),
        ("offline", OFFLINE_ACCURACY, OFFLINE_ROC_AUC),
    ):
        scores = perf.get(side) or {}
        put(acc, scores.get("accuracy"))
        put(auc, scores.get("roc_auc"))
    return registry


def push(gateway: str, job: str, result: dict, finished_at: float) -> None:
    """PUT the result's series into the group {model, version} of ``job``."""
    key = {"model": result["model"], "version": str(result["version"])}
    try:
        push_to_gateway(
            gateway, job=job, registry=registry_for(result, finished_at), grouping_key=key, timeout=10
        )
    except OSError as exc:
        raise MlstackError(f"cannot push metrics to the Pushgateway at {gateway}: {exc}") from exc
    log.info("pushed drift metrics for %s version %s to %s", key["model"], key["version"], gateway)


def pushed_versions(gateway: str, job: str, model: str) -> set[str]:
    """Versions of ``model`` that have a group under ``job`` on the Pushgateway."""
    url = gateway if "://" in gateway else f"http://{gateway}"
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/v1/metrics", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MlstackError(f"cannot list groups on the Pushgateway at {gateway}: {exc}") from exc
    versions = set()
    for group in response.json().get("data", []):
        labels = group.get("labels", {})
        if labels.get("job") == job and labels.get("model") == model and "version" in labels:
            versions.add(labels["version"])
    return versions


def retire(gateway: str, job: str, model: str, live: set[str]) -> list[str]:
    """Delete the groups of versions not in ``live``; returns the versions deleted."""
    retired = sorted(pushed_versions(gateway, job, model) - set(live))
    for version in retired:
        try:
            delete_from_gateway(
                gateway, job=job, grouping_key={"model": model, "version": version}, timeout=10
            )
        except OSError as exc:
            raise MlstackError(f"cannot delete retired group on the Pushgateway at {gateway}: {exc}") from exc
        log.info("deleted drift metrics of retired %s version %s", model, version)
    return retired
