"""``kubectl model analyze --apply`` with every source real: payload Parquet logs, a Prometheus server, MLflow.

Prometheus scrapes two local exporters, one per revision's queue-proxy, publishing series of the shape
Knative 1.21's queue-proxy exports (monitoring/README.md; the shape itself is checked against the pinned
upstream exporter in test_promql_shipped.py): ``kn_serving_invocation_duration_seconds`` labelled only
``http_response_status_code`` and ``otel_scope_name``, and ``target_info`` carrying the revision.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from string import Template

import numpy as np
import pandas as pd
from prometheus_client import Gauge, Histogram

from mlstack.core.payload import write_feedback, write_predictions
from mlstack.core.settings import CanaryConfig, load_settings
from mlstack.monitoring.canary.metrics import revision_metrics
from tests.fixtures.canary import wait_for_samples

PRIMARY, CANARY = "fraud-predictor-00001", "fraud-predictor-00002"
# the queue-proxy's bounds (knative.dev/serving v0.48.1 pkg/queue/request_metric.go), in seconds
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
SCOPE = "knative.dev/serving/pkg/queue"


def queue_proxy_series(registry, revision: str, namespace: str):
    """One queue-proxy's series: its target_info (resource attributes) and the request histogram."""
    info = Gauge(
        "target_info",
        "Target metadata",
        [
            "k8s_namespace_name",
            "kn_service_name",
            "kn_configuration_name",
            "kn_revision_name",
            "container_name",
        ],
        registry=registry,
    )
    info.labels(namespace, "fraud-predictor", "fraud-predictor", revision, "queue-proxy").set(1)
    duration = Histogram(
        "kn_serving_invocation_duration_seconds",
        "The duration of task execution",
        ["http_response_status_code", "otel_scope_name"],
        buckets=BOUNDS,
        registry=registry,
    )
    for code in ("200", "500"):
        duration.labels(code, SCOPE)  # series exist at 0 before traffic
    return duration


def on_canary(expr: str, namespace: str) -> str:
    return Template(expr).substitute(namespace=namespace, revision=CANARY, window="5m")


def log_traffic(
    store: str, version: str, n: int, accuracy: float, rng: np.random.Generator, namespace: str
) -> None:
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
                "namespace": namespace,
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
    url, (primary_registry, canary_registry) = prometheus
    monkeypatch.setenv("MLSTACK_CANARY__PROMETHEUS_URL", url)
    ns = kube_api.namespace
    durations = {
        PRIMARY: queue_proxy_series(primary_registry, PRIMARY, ns),
        CANARY: queue_proxy_series(canary_registry, CANARY, ns),
    }
    shipped = CanaryConfig()  # the analysis's default queries: the ones the chart ships
    # three scrapes of the canary's target at 0 before traffic, so increase() counts all of it
    wait_for_samples(url, f'count_over_time(target_info{{kn_revision_name="{CANARY}"}}[1m])', 3)

    assert kubectl_model("canary", "fraud", "--version", "2", "--percent", "10")[0] == 0
    time.sleep(1)
    rng = np.random.default_rng(0)
    store = str(mlstack_home / "payloads")
    log_traffic(store, "1", 9000, 0.85, rng, ns)
    log_traffic(store, "2", 1000, 0.85, rng, ns)
    for revision, ok, failed, seconds in ((PRIMARY, 8982, 18, 0.008), (CANARY, 970, 30, 0.009)):
        for code, count in (("200", ok), ("500", failed)):
            for _ in range(count):
                durations[revision].labels(code, SCOPE).observe(seconds)
    wait_for_samples(url, on_canary(shipped.requests_query, ns), 1000)

    # the Prometheus path on its own
    measured = revision_metrics(load_settings().canary, ns, CANARY, 300)
    assert 1000 <= measured.requests <= 1500
    assert abs(measured.errors / measured.requests - 0.03) < 0.008  # increase() extrapolates each series
    assert 5 <= measured.p95_ms <= 10  # p95 inside the (5 ms, 10 ms] bucket

    code, out, err = kubectl_model("analyze", "fraud", "--apply", "-o", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verdict"] == "rollback"
    assert summary["variants"]["canary"]["logged_predictions"] == 1000
    assert summary["variants"]["primary"]["metrics"]["revision"] == PRIMARY
    assert any("5xx" in reason for reason in summary["reasons"])
    assert summary["applied"]["move"] == "rollback"
    assert "## Metrics" in open(summary["report"]["markdown"]).read()
    obj = kube_api.objects[(ns, "fraud")]
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
    log_traffic(store, "1", 3000, 0.85, rng, kube_api.namespace)
    log_traffic(store, "2", 3000, 0.85, rng, kube_api.namespace)

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
    assert "canaryTrafficPercent" not in kube_api.objects[(kube_api.namespace, "fraud")]["spec"]["predictor"]
    assert mlflow_registry.get_registered_model("fraud").aliases == {"champion": 2, "previous": 1}
