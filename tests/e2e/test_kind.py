"""End to end on a cluster built by `make kind-up && make images kind-load && make deploy`.

Skipped, with the reason, when no cluster is reachable or mlstack is not deployed. The tests run in
file order and build on each other: platform ready -> the training pipeline on KFP with deploy on
(its deploy step creates the InferenceService from the chart's template: version 1 is the champion)
-> predictions through Kourier -> a second run registers version 2 -> `kubectl model canary` ->
`kubectl model promote` -> `kubectl model canary` of the old version -> `kubectl model rollback` ->
drift job. Each step asserts what a user would check: MLflow aliases after every move, payload
partitions with rows in S3 per version, Knative's request series per revision in Prometheus, an
analysis verdict from them, and a drift verdict (not "insufficient data") on ordinary traffic. Jobs
are waited for Complete or Failed, with their logs printed at once (tests/e2e/jobs.py). `make e2e` puts .venv/bin and bin/ on PATH (mlstack, kubectl-model). Environment: MLSTACK_E2E_NAMESPACE (default mlstack),
MLSTACK_E2E_MODEL (default loan-default), MLSTACK_E2E_INGRESS (default http://127.0.0.1:8080, the port
kind maps to Kourier).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mlstack.core.settings import CanaryConfig
from tests.e2e import waits
from tests.e2e.cluster import (
    INGRESS,
    MODEL,
    NAMESPACE,
    PAYLOAD_STORE,
    aliases,
    kubectl,
    kubectl_model,
    prometheus,
    pushgateway,
    run_job,
    s3_env,
    version_tags,
    wait_until,
)
from tests.e2e.model import (
    isvc,
    isvc_exists,
    isvc_ready,
    payload_rows,
    predict,
    predictor_host,
    run_training_pipeline,
    sample_instances,
    split_at,
    traffic,
    versions_served,
)


@dataclass
class CanaryPhase:
    """When the first canary started and which version answered each row sent then."""

    since: datetime = datetime.max.replace(tzinfo=UTC)
    served: Counter = field(default_factory=Counter)


CANARY = CanaryPhase()


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """Skip the whole module, saying why, unless a cluster with mlstack deployed answers.

    With MLSTACK_E2E_REQUIRE_CLUSTER=1 (CI, which built the cluster) a missing cluster fails instead.
    """
    skip = pytest.fail if os.environ.get("MLSTACK_E2E_REQUIRE_CLUSTER") == "1" else pytest.skip
    if shutil.which("kubectl") is None:
        skip("e2e: kubectl is not installed")
    try:
        probe = kubectl("version", "--request-timeout=5s", "-o", "json", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        skip("e2e: no Kubernetes cluster reachable (kubectl version timed out); run `make kind-up` first")
    if probe.returncode != 0 or "serverVersion" not in probe.stdout:
        skip(f"e2e: no Kubernetes cluster reachable ({probe.stderr.strip()[:200]}); run `make kind-up` first")
    deployed = kubectl("-n", NAMESPACE, "get", "configmap", f"{MODEL}-isvc-template", check=False)
    if deployed.returncode != 0:
        skip(
            f"e2e: the mlstack chart is not installed in {NAMESPACE}; run `make images kind-load deploy` first"
        )


# ------------------------------------------------------------------ the tests, in order


def test_platform_and_mlstack_are_available():
    seconds = waits.PLATFORM_AVAILABLE.seconds - 30
    kubectl(
        "wait",
        "--for=condition=Available",
        "deployment",
        "--all",
        "-A",
        f"--timeout={seconds}s",
        timeout=seconds + 30,
    )
    seconds = waits.STATEFULSETS.seconds - 30
    kubectl(
        "-n", NAMESPACE, "rollout", "status", "statefulset", f"--timeout={seconds}s", timeout=seconds + 30
    )


def test_training_pipeline_runs_on_kfp_and_deploys_the_champion():
    assert not isvc_exists(), "start from a fresh `make deploy`: the pipeline creates the service"
    run_training_pipeline()
    assert isvc_exists(), "the pipeline's deploy step did not create the InferenceService"
    # the registry's mlflow-artifacts:/ location, mapped onto the chart's artifacts destination
    uri = isvc()["spec"]["predictor"]["model"]["storageUri"]
    assert uri.startswith("s3://mlstack/mlflow-artifacts/"), uri
    assert aliases() == {"champion": "1"}


def test_inference_service_becomes_ready():
    wait_until(isvc_ready, timeout=waits.ISVC_READY.seconds, what=f"InferenceService {MODEL} Ready")
    assert isvc()["spec"]["predictor"]["minReplicas"] >= 2


def test_predictions_through_kourier():
    with httpx.Client(timeout=30) as client:
        response = predict(client, sample_instances(20, seed=1))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["predictions"]) == 20
        assert set(body["predictions"]) <= {0, 1}
        assert body["model_version"]
        bad = client.post(
            f"{INGRESS}/v1/models/{MODEL}:predict",
            json={"instances": [{"no_such_feature": 1}]},
            headers={"Host": predictor_host()},
        )
        assert bad.status_code == 400 and bad.json()


def test_second_run_registers_version_two():
    run_training_pipeline()  # deploy is off now: it only registers
    assert aliases() == {"champion": "1", "challenger": "2"}


def test_canary_at_ten_percent_serves_about_ten_percent():
    baseline = str(predict(httpx.Client(timeout=30), sample_instances(1, seed=2)).json()["model_version"])
    assert baseline == "1"
    kubectl_model("canary", MODEL, "--version", "2", "--percent", "10")
    wait_until(lambda: split_at(10), waits.SPLIT.seconds, "canary revision at 10%")
    CANARY.since = datetime.now(UTC) - timedelta(seconds=5)
    requests = 600
    counts = versions_served(requests, seed=3)
    CANARY.served = counts
    share = counts["2"] / requests
    # binomial: 10% of 600 has sd 1.2 points; 4 sd either side
    sd = math.sqrt(0.1 * 0.9 / requests)
    assert abs(share - 0.10) <= 4 * sd, f"canary share {share:.3f} from {dict(counts)}"
    assert counts[baseline] + counts["2"] == requests


def test_payloads_of_both_versions_land_in_s3_partitions():
    served = CANARY.served
    # the sink flushes every sink.flush_seconds (5 s); every answered row is in a partition of its version
    with s3_env():
        stored = wait_until(
            lambda: (
                (rows := payload_rows(CANARY.since))["1"] >= served["1"] and rows["2"] >= served["2"] and rows
            ),
            waits.PAYLOADS.seconds,
            f"payload rows for {dict(served)} in {PAYLOAD_STORE}",
            interval=10,
        )
    assert stored["1"] > 0 and stored["2"] > 0


def _requests_query(revision: str) -> str:
    query = CanaryConfig().requests_query  # what the chart passes to the analysis, unchanged
    return query.replace("$namespace", NAMESPACE).replace("$revision", revision).replace("$window", "30m")


def test_knative_request_series_exist_per_revision():
    revisions = [t["revisionName"] for t in traffic() if t.get("percent")]
    assert len(revisions) == 2, traffic()
    with prometheus() as url:

        def requests(revision: str) -> float:
            answer = httpx.get(f"{url}/api/v1/query", params={"query": _requests_query(revision)}, timeout=30)
            result = answer.json()["data"]["result"]
            return float(result[0]["value"][1]) if result else 0.0

        counted = wait_until(
            lambda: (
                (found := {r: requests(r) for r in revisions})
                and all(v > 0 for v in found.values())
                and found
            ),
            waits.SERIES.seconds,
            f"queue-proxy request series of {revisions}",
            interval=15,
        )
    print(f"\nrequests per revision (Prometheus, 30m): {counted}")


def test_analyze_prints_a_verdict_from_the_real_series_and_payloads():
    with prometheus() as url, s3_env() as s3:
        env = {**s3, "MLSTACK_CANARY__PROMETHEUS_URL": url, "MLSTACK_SINK__STORE": PAYLOAD_STORE}
        result = json.loads(kubectl_model("analyze", MODEL, "-o", "json", extra_env=env))
    print(f"\nanalysis: {result['verdict']}: {result['reasons']}")
    assert result["verdict"] in ("promote", "rollback", "continue")
    for role in ("primary", "canary"):
        variant = result["variants"][role]
        assert variant["logged_predictions"] > 0, variant
        assert variant["metrics"] and variant["metrics"]["requests"] > 0, variant


def test_promote_sends_all_traffic_to_the_canary():
    kubectl_model("promote", MODEL)
    wait_until(
        lambda: isvc_ready() and "canaryTrafficPercent" not in isvc()["spec"]["predictor"],
        waits.PROMOTED.seconds,
        "promotion",
    )
    wait_until(
        lambda: versions_served(50, seed=4) == Counter({"2": 50}),
        waits.TRAFFIC_MOVED.seconds,
        "all traffic on the promoted version",
        interval=10,
    )
    assert aliases() == {"champion": "2", "previous": "1"}


def test_rollback_returns_all_traffic_to_the_champion():
    kubectl_model("canary", MODEL, "--version", "1", "--percent", "50")
    wait_until(lambda: split_at(50), waits.SPLIT.seconds, "second canary at 50%")
    assert aliases()["challenger"] == "1"
    kubectl_model("rollback", MODEL, "--reason", "e2e")
    wait_until(
        lambda: versions_served(50, seed=5) == Counter({"2": 50}),
        waits.TRAFFIC_MOVED.seconds,
        "all traffic back on the champion",
        interval=10,
    )
    moved = aliases()
    assert moved["champion"] == "2" and "challenger" not in moved, moved
    assert version_tags("1").get("rejected") == "e2e"


def test_drift_job_gives_a_verdict_on_ordinary_traffic():
    since = datetime.now(UTC) - timedelta(hours=1)  # the drift window (drift.window)
    # enough rows for a verdict (drift.min_rows, 1000), from a client that asks for no probabilities
    versions_served(25, seed=6, rows_per_request=60)
    with s3_env():
        wait_until(
            lambda: payload_rows(since)["2"] >= 1500,
            waits.PAYLOADS.seconds,
            "1500 champion rows in the payload log",
            interval=10,
        )
    run_job(f"mlstack-drift-{MODEL}", timeout=waits.DRIFT_JOB.seconds)
    with pushgateway() as url:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    ours = [line for line in text.splitlines() if f'model="{MODEL}"' in line and 'version="2"' in line]
    values = {
        line.split("{", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in ours if not line.startswith("#")
    }
    assert values.get("mlstack_drift_insufficient_data") == 0, ours
    assert values.get("mlstack_drift_rows", 0) >= 1000, ours
    assert "mlstack_drift_detected" in values, ours  # pushed only with a verdict
