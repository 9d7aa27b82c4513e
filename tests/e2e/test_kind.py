"""End to end on a cluster built by `make kind-up && make images kind-load && make deploy`.

Skipped, with the reason, when no cluster is reachable or mlstack is not deployed. The tests run in
file order and build on each other: platform ready -> the training pipeline on KFP with deploy on
(its deploy step creates the InferenceService from the chart's template: version 1 is the champion)
-> predictions through Kourier -> a second run registers version 2 -> `kubectl model canary` ->
`kubectl model promote` -> `kubectl model canary` of the old version -> `kubectl model rollback` ->
drift job. `make e2e` puts .venv/bin and bin/ on PATH (mlstack, kubectl-model). Environment: MLSTACK_E2E_NAMESPACE (default mlstack),
MLSTACK_E2E_MODEL (default loan-default), MLSTACK_E2E_INGRESS (default http://127.0.0.1:8080, the port
kind maps to Kourier).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import free_port, stop, wait_for_http

NAMESPACE = os.environ.get("MLSTACK_E2E_NAMESPACE", "mlstack")
MODEL = os.environ.get("MLSTACK_E2E_MODEL", "loan-default")
INGRESS = os.environ.get("MLSTACK_E2E_INGRESS", "http://127.0.0.1:8080")
KUBECTL = shutil.which("kubectl") or "kubectl"
# `make e2e` puts .venv/bin on PATH; fall back to the interpreter's own bin/ (the same venv)
MLSTACK = shutil.which("mlstack") or os.path.join(os.path.dirname(os.sys.executable), "mlstack")


def kubectl_model(*args: str, timeout: float = 300) -> str:
    """``kubectl model ...`` through kubectl's plugin mechanism (kubectl-model on PATH), with the
    in-cluster MLflow port-forwarded (the plugin reads and moves the registry's aliases)."""
    import base64

    auth = kubectl_json("-n", NAMESPACE, "get", "secret", "mlstack-mlflow-auth")["data"]
    with PortForward(NAMESPACE, "mlstack-mlflow", 5000, health="/health") as mlflow:
        env = {
            **os.environ,
            "MLSTACK_TRACKING_URI": mlflow,
            "MLFLOW_TRACKING_USERNAME": base64.b64decode(auth["admin-username"]).decode(),
            "MLFLOW_TRACKING_PASSWORD": base64.b64decode(auth["admin-password"]).decode(),
        }
        proc = subprocess.run(
            [KUBECTL, "model", *args, "-n", NAMESPACE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl model {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def kubectl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json").stdout)


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


class PortForward:
    """`kubectl port-forward` to a Service on a free local port, for the duration of a block."""

    def __init__(self, namespace: str, service: str, port: int, health: str = "/"):
        self.local = free_port()
        self.args = ["-n", namespace, "port-forward", f"svc/{service}", f"{self.local}:{port}"]
        self.health = health

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [KUBECTL, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        url = f"http://127.0.0.1:{self.local}"
        wait_for_http(url + self.health, timeout=60, process=self.process)
        return url

    def __exit__(self, *exc):
        stop(self.process, timeout=10)


def wait_until(predicate, timeout: float, what: str, interval: float = 5.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def isvc() -> dict:
    return kubectl_json("-n", NAMESPACE, "get", "inferenceservice", MODEL)


def isvc_ready() -> bool:
    conditions = isvc().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def predictor_host() -> str:
    url = isvc()["status"]["components"]["predictor"]["url"]
    return httpx.URL(url).host


def sample_instances(rows: int, seed: int) -> list[dict]:
    from mlstack.core.generator import generate, loan_contract

    contract = loan_contract()
    frame = generate(rows, seed=seed)[contract.feature_names]
    return json.loads(frame.to_json(orient="records"))


def predict(client: httpx.Client, instances: list[dict]) -> httpx.Response:
    return client.post(
        f"{INGRESS}/v1/models/{MODEL}:predict",
        json={"instances": instances},
        headers={"Host": predictor_host()},
    )


def versions_served(requests: int, seed: int = 0) -> Counter:
    """Send single-row requests through Kourier; count the model version that answered each."""
    counts: Counter = Counter()
    rows = sample_instances(requests, seed)
    host = predictor_host()
    with httpx.Client(timeout=30) as client:
        for row in rows:
            response = client.post(
                f"{INGRESS}/v1/models/{MODEL}:predict", json={"instances": [row]}, headers={"Host": host}
            )
            assert response.status_code == 200, response.text
            counts[str(response.json()["model_version"])] += 1
    return counts


def isvc_exists() -> bool:
    return kubectl("-n", NAMESPACE, "get", "inferenceservice", MODEL, check=False).returncode == 0


def split_at(percent: int) -> bool:
    traffic = isvc()["status"]["components"]["predictor"].get("traffic", [])
    return isvc_ready() and any(t.get("percent") == percent for t in traffic)


# ------------------------------------------------------------------ the tests, in order


def test_platform_and_mlstack_are_available():
    for namespace in (
        "cert-manager",
        "knative-serving",
        "kourier-system",
        "kserve",
        "kubeflow",
        "monitoring",
        NAMESPACE,
    ):
        kubectl(
            "-n",
            namespace,
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            "--timeout=300s",
            timeout=330,
        )
    kubectl("-n", NAMESPACE, "rollout", "status", "statefulset", "--timeout=300s", timeout=330)


def s3_credentials() -> dict[str, str]:
    """The S3 credentials `make deploy` put in the mlstack-s3 Secret (KFP's SeaweedFS)."""
    import base64

    data = kubectl_json("-n", NAMESPACE, "get", "secret", "mlstack-s3")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def run_training_pipeline():
    """Training data into SeaweedFS, then the training pipeline on KFP, waited to success."""
    import kfp

    env = {**os.environ, **s3_credentials(), "AWS_DEFAULT_REGION": "us-east-1"}
    with PortForward("kubeflow", "seaweedfs", 8333) as s3:
        generate = subprocess.run(
            [
                MLSTACK,
                "data",
                "generate",
                "--rows",
                "20000",
                "--seed",
                "1",
                "--out",
                "s3://mlstack/data/train.parquet",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, "MLSTACK_S3_ENDPOINT_URL": s3},
        )
        assert generate.returncode == 0, generate.stderr[-2000:]
    env["MLSTACK_COMPONENT_IMAGE"] = os.environ.get("MLSTACK_COMPONENT_IMAGE", "localhost:5001/mlstack:dev")
    env["MLSTACK_TRAINING__MODEL_NAME"] = MODEL  # register under the name the chart serves
    # the first run's deploy step creates the InferenceService; later versions go through kubectl model
    env["MLSTACK_CANARY__DEPLOY"] = "true" if not isvc_exists() else "false"
    with PortForward("kubeflow", "ml-pipeline", 8888, health="/apis/v2beta1/healthz") as kfp_host:
        submit = subprocess.run(
            [
                MLSTACK,
                "pipeline",
                "submit",
                "--host",
                kfp_host,
                "--json",
                "--data",
                "s3://mlstack/data/train.parquet",
                "--tracking-uri",
                f"http://mlstack-mlflow.{NAMESPACE}.svc.cluster.local:5000",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]
        run_id = json.loads(submit.stdout)["run_id"]
        run = kfp.Client(host=kfp_host).wait_for_run_completion(run_id, timeout=3600)
    assert run.state == "SUCCEEDED", f"pipeline run {run_id} ended {run.state}"


def test_training_pipeline_runs_on_kfp_and_deploys_the_champion():
    assert not isvc_exists(), "start from a fresh `make deploy`: the pipeline creates the service"
    run_training_pipeline()
    assert isvc_exists(), "the pipeline's deploy step did not create the InferenceService"


def test_inference_service_becomes_ready():
    wait_until(isvc_ready, timeout=600, what=f"InferenceService {MODEL} Ready")
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


def test_canary_at_ten_percent_serves_about_ten_percent():
    baseline = str(predict(httpx.Client(timeout=30), sample_instances(1, seed=2)).json()["model_version"])
    assert baseline == "1"
    kubectl_model("canary", MODEL, "--version", "2", "--percent", "10")
    wait_until(lambda: split_at(10), 600, "canary revision at 10%")
    requests = 600
    counts = versions_served(requests, seed=3)
    share = counts["2"] / requests
    # binomial: 10% of 600 has sd 1.2 points; 4 sd either side
    sd = math.sqrt(0.1 * 0.9 / requests)
    assert abs(share - 0.10) <= 4 * sd, f"canary share {share:.3f} from {dict(counts)}"
    assert counts[baseline] + counts["2"] == requests


def test_promote_sends_all_traffic_to_the_canary():
    kubectl_model("promote", MODEL)
    wait_until(
        lambda: isvc_ready() and "canaryTrafficPercent" not in isvc()["spec"]["predictor"], 600, "promotion"
    )
    wait_until(
        lambda: versions_served(50, seed=4) == Counter({"2": 50}),
        300,
        "all traffic on the promoted version",
        interval=10,
    )


def test_rollback_returns_all_traffic_to_the_champion():
    kubectl_model("canary", MODEL, "--version", "1", "--percent", "50")
    wait_until(lambda: split_at(50), 600, "second canary at 50%")
    kubectl_model("rollback", MODEL, "--reason", "e2e")
    wait_until(
        lambda: versions_served(50, seed=5) == Counter({"2": 50}),
        300,
        "all traffic back on the champion",
        interval=10,
    )


def test_drift_job_pushes_metrics():
    job = f"drift-e2e-{int(time.time())}"
    kubectl("-n", NAMESPACE, "create", "job", job, f"--from=cronjob/mlstack-drift-{MODEL}")
    kubectl("-n", NAMESPACE, "wait", "--for=condition=complete", f"job/{job}", "--timeout=900s", timeout=930)
    with PortForward(NAMESPACE, "mlstack-pushgateway", 9091, health="/-/ready") as pushgateway:
        metrics = httpx.get(f"{pushgateway}/metrics", timeout=30).text
    pushed = [
        line
        for line in metrics.splitlines()
        if line.startswith("mlstack_drift_last_success_timestamp_seconds") and f'model="{MODEL}"' in line
    ]
    assert pushed, "the drift job ran but pushed no success timestamp for the model"
