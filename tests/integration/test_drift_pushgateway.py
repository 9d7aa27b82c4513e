"""Drift metrics land on a real Pushgateway with model/version labels; retired versions' series go away."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlstack.monitoring.drift import metrics

JOB = "mlstack_drift"


def _result(version: str, status: str = "ok") -> dict:
    if status != "ok":
        return {
            "model": "fraud",
            "version": version,
            "rows": 12,
            "status": status,
            "drift_detected": None,
            "drifted_share": None,
            "features": {},
            "prediction_drift": None,
        }
    return {
        "model": "fraud",
        "version": version,
        "rows": 5000,
        "status": "ok",
        "drift_detected": True,
        "drifted_share": 0.25,
        "features": {
            "credit_score": {
                "score": 0.42,
                "method": "wasserstein",
                "drifted": True,
                "missing_share": {"reference": 0.0, "current": 0.0},
                "out_of_contract_share": 0.0,
            },
            "region": {
                "score": 0.01,
                "method": "jensenshannon",
                "drifted": False,
                "missing_share": {"reference": 0.0, "current": 0.1},
                "out_of_contract_share": 0.0,
            },
        },
        "prediction_drift": {"column": "probability", "score": 0.3, "method": "wasserstein", "drifted": True},
        "performance": {
            "labeled_rows": 0,
            "online": None,
            "offline": {"accuracy": 0.88, "roc_auc": 0.85},
            "degraded": None,
        },
    }


def _samples(gateway: str) -> list:
    text = httpx.get(f"{gateway}/metrics", timeout=10).text
    return [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("mlstack_")
    ]


def test_metrics_land_with_labels_and_retired_versions_are_deleted(pushgateway):
    metrics.push(pushgateway, JOB, _result("3"), finished_at=1_700_000_000)
    metrics.push(pushgateway, JOB, _result("4"), finished_at=1_700_000_100)
    samples = _samples(pushgateway)
    scores = {
        (s.labels["version"], s.labels["feature"], s.labels["method"]): s.value
        for s in samples
        if s.name == "mlstack_feature_drift_score"
    }
    assert scores == {
        ("3", "credit_score", "wasserstein"): 0.42,
        ("3", "region", "jensenshannon"): 0.01,
        ("4", "credit_score", "wasserstein"): 0.42,
        ("4", "region", "jensenshannon"): 0.01,
    }
    for sample in samples:
        assert sample.labels["job"] == JOB and sample.labels["model"] == "fraud"
    by_name = {(s.name, s.labels["version"]): s.value for s in samples if "feature" not in s.labels}
    assert by_name[("mlstack_drift_detected", "3")] == 1.0
    assert by_name[("mlstack_drifted_features_share", "4")] == 0.25
    assert by_name[("mlstack_prediction_drift_score", "3")] == 0.3
    (prediction,) = [
        s for s in samples if s.name == "mlstack_prediction_drift_score" and s.labels["version"] == "3"
    ]
    assert (prediction.labels["column"], prediction.labels["method"]) == ("probability", "wasserstein")
    assert by_name[("mlstack_drift_rows", "3")] == 5000
    assert by_name[("mlstack_drift_last_success_timestamp_seconds", "4")] == 1_700_000_100
    assert by_name[("mlstack_offline_accuracy", "3")] == 0.88

    # version 3 is no longer champion or challenger: its group is deleted, version 4 stays
    assert metrics.pushed_versions(pushgateway, JOB, "fraud") == {"3", "4"}
    assert metrics.retire(pushgateway, JOB, "fraud", live={"4"}) == ["3"]
    left = _samples(pushgateway)
    assert left and {s.labels["version"] for s in left} == {"4"}


def test_insufficient_data_replaces_the_old_verdict(pushgateway):
    metrics.push(pushgateway, JOB, _result("5"), finished_at=1_700_000_000)
    metrics.push(pushgateway, JOB, _result("5", status="insufficient_data"), finished_at=1_700_000_900)
    names = {s.name: s.value for s in _samples(pushgateway) if s.labels["version"] == "5"}
    assert names["mlstack_drift_insufficient_data"] == 1.0
    assert names["mlstack_drift_rows"] == 12
    # no stale "no drift"/"drift" verdict survives a run that had no data
    assert "mlstack_drift_detected" not in names
    assert "mlstack_feature_drift_score" not in names


def test_other_models_groups_are_left_alone(pushgateway):
    metrics.push(pushgateway, JOB, _result("1") | {"model": "churn"}, finished_at=1.0)
    metrics.push(pushgateway, JOB, _result("7"), finished_at=1.0)
    assert metrics.retire(pushgateway, JOB, "fraud", live=set()) == ["7"]
    assert {s.labels["model"] for s in _samples(pushgateway)} == {"churn"}
