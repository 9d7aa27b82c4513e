"""``kubectl model analyze --apply`` with every source real: payload Parquet logs, a Prometheus server, MLflow.

Prometheus scrapes a local exporter that publishes Knative queue-proxy-shaped series
(``revision_app_request_count``, ``revision_app_request_latencies``) per revision.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from prometheus_client import Gauge, Histogram

from mlstack.core.payload import write_feedback, write_predictions
from mlstack.core.settings import load_settings
from monitoring.canary_metrics import revision_metrics
from tests.fixtures.canary import wait_for_samples

PRIMARY, CANARY = "fraud-predictor-00001", "fraud-predictor-00002"
ON_CANARY = '{revision_name="fraud-predictor-00002"}'


def log_traffic(store: str, version: str, n: int, accuracy: float, rng: np.random.Generator) -> None:
    """Prediction rows as the payload sink writes them, plus feedback labels for each.

    Every row falls in the last 0.9 s. Callers start the canary at least 1 s before, and its
    started-at stamp is truncated to the second, so all ``n`` rows are inside the analysis window
    whatever the wall clock reads (rows spread over 3 s let 1,317-1,961 of 3,000 in, by luck).
    """
    now = datetime.now(UTC)
    probability = rng.beta(2, 5, n)
    prediction = (probability >= 0.5).astype(int)
    ids = [uuid.uuid4().hex for _ in range(n)]
    write_predictions(
        store,
        pd.DataFrame(
            {
                "request_id": ids,
                "row_index": 0,
                "inference_service": "fraud",
                "namespace": "models",
                "component": "predictor",
                "model_name": "fraud",
                "model_version": version,
                "requested_at": [now - timedelta(seconds=0.9 * i / n) for i in range(n)],
                "responded_at": now,
                "prediction": prediction,
                "probability": probability,
                "income": rng.normal(50_000, 10_000, n),
            }
        ),
    )
    label = np.where(rng.random(n) < accuracy, prediction, 1 - prediction)
    write_feedback(
        store, pd.DataFrame({"request_id": ids, "row_index": 0, "label": label, "received_at": now})
    )


def test_analyze_rolls_back_a_canary_with_3_percent_5xx(
    kube_api, mlflow_registry, prometheus, kubectl_model, monkeypatch, mlstack_home
):
    url, metrics = prometheus
    monkeypatch.setenv("MLSTACK_CANARY__PROMETHEUS_URL", url)
    requests = Gauge(
        "revision_app_request_count",
        "requests",
        ["namespace_name", "revision_name", "response_code_class"],
        registry=metrics,
    )
    latency = Histogram(
        "revision_app_request_latencies",
        "ms",
        ["namespace_name", "revision_name"],
        buckets=(1, 2, 5, 10, 20, 50, 100, 200),
        registry=metrics,
    )
    for revision in (PRIMARY, CANARY):
        latency.labels("models", revision)  # series exist at 0 before traffic, as on a live revision
        for code_class in ("2xx", "5xx"):
            requests.labels("models", revision, code_class).set(0)
    wait_for_samples(url, "count_over_time(revision_app_request_count" + ON_CANARY + "[1m])", 3)

    assert kubectl_model("canary", "fraud", "--version", "2", "--percent", "10")[0] == 0
    time.sleep(1)
    rng = np.random.default_rng(0)
    store = str(mlstack_home / "payloads")
    log_traffic(store, "1", 9000, 0.85, rng)
    log_traffic(store, "2", 1000, 0.85, rng)
    requests.labels("models", PRIMARY, "2xx").set(8982)
    requests.labels("models", PRIMARY, "5xx").set(18)
    requests.labels("models", CANARY, "2xx").set(970)
    requests.labels("models", CANARY, "5xx").set(30)
    for _ in range(200):
        latency.labels("models", PRIMARY).observe(8)
        latency.labels("models", CANARY).observe(9)
    wait_for_samples(url, "sum(increase(revision_app_request_count" + ON_CANARY + "[5m]))", 1000)
    wait_for_samples(url, "sum(increase(revision_app_request_latencies_count" + ON_CANARY + "[5m]))", 200)

    # the Prometheus path on its own
    measured = revision_metrics(load_settings().canary, "models", CANARY, 300)
    assert 1000 <= measured.requests <= 1500
    assert abs(measured.errors / measured.requests - 0.03) < 0.008  # increase() extrapolates each series
    assert 5 <= measured.p95_ms <= 10

    code, out, err = kubectl_model("analyze", "fraud", "--apply", "-o", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verdict"] == "rollback"
    assert summary["variants"]["canary"]["logged_predictions"] == 1000
    assert summary["variants"]["primary"]["metrics"]["revision"] == PRIMARY
    assert any("5xx" in reason for reason in summary["reasons"])
    assert summary["applied"]["move"] == "rollback"
    assert "## Metrics" in open(summary["report"]["markdown"]).read()
    obj = kube_api.objects[("models", "fraud")]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/models/m-1/artifacts"
    tag = mlflow_registry.get_model_version("fraud", "2").tags["rejected"]
    assert tag.startswith("canary analysis: canary 5xx rate")

    # nothing in flight any more: analyze says so and changes nothing
    code, out, _ = kubectl_model("analyze", "fraud", "-o", "json")
    assert code == 0 and json.loads(out)["verdict"] == "none"


def test_analyze_promotes_equal_variants_and_moves_aliases(
    kube_api, mlflow_registry, kubectl_model, monkeypatch, mlstack_home
):
    """No Prometheus configured: the metric checks are skipped (and reported); labels decide."""
    monkeypatch.setenv("MLSTACK_CANARY__MAX_ACCURACY_DROP", "0.05")
    assert kubectl_model("canary", "fraud", "--version", "2", "--percent", "50")[0] == 0
    time.sleep(1)
    rng = np.random.default_rng(1)
    store = str(mlstack_home / "payloads")
    log_traffic(store, "1", 3000, 0.85, rng)
    log_traffic(store, "2", 3000, 0.85, rng)

    code, out, err = kubectl_model("analyze", "fraud", "-o", "json")  # without --apply: changes nothing
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verdict"] == "promote"
    for variant in ("primary", "canary"):  # every logged row is in the window: no wall-clock luck
        assert summary["variants"][variant]["logged_predictions"] == 3000

    code, out, err = kubectl_model("analyze", "fraud", "--apply")
    assert code == 0, err
    assert out.startswith("verdict: promote")
    assert "5xx rate not checked" in out
    assert "applied: promote fraud v2 (was v1)" in out
    assert "canaryTrafficPercent" not in kube_api.objects[("models", "fraud")]["spec"]["predictor"]
    assert mlflow_registry.get_registered_model("fraud").aliases == {"champion": 2, "previous": 1}
