"""The e2e's doors into the kind cluster: kubectl, port-forwards, and clients for S3, MLflow and Prometheus.

Names and ports: KFP's from tests/fixtures/kfp_facts.py; the chart's Services (``<release>-mlflow``
:5000, ``<release>-pushgateway`` :9091); kube-prometheus-stack's Prometheus ``kps-prometheus`` :9090
in ``monitoring`` (``fullnameOverride: kps`` in manifests/platform/monitoring/values.yaml,
``templates/prometheus/service.yaml`` at kube-prometheus-stack-83.4.0: ``<fullname>-prometheus``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

from tests.conftest import free_port, stop, wait_for_http
from tests.e2e import waits
from tests.e2e.jobs import JobOutcome, wait_for_job
from tests.fixtures import kfp_facts

NAMESPACE = os.environ.get("MLSTACK_E2E_NAMESPACE", "mlstack")
MODEL = os.environ.get("MLSTACK_E2E_MODEL", "loan-default")
INGRESS = os.environ.get("MLSTACK_E2E_INGRESS", "http://127.0.0.1:8080")
KUBECTL = shutil.which("kubectl") or "kubectl"
# `make e2e` puts .venv/bin on PATH; fall back to the interpreter's own bin/ (the same venv)
MLSTACK = shutil.which("mlstack") or os.path.join(os.path.dirname(os.sys.executable), "mlstack")
PAYLOAD_STORE = "s3://mlstack/payloads"  # sink.store in helm/mlstack/values-kind.yaml


def kubectl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def secret(namespace: str, name: str) -> dict[str, str]:
    data = kubectl_json("-n", namespace, "get", "secret", name)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def wait_until(predicate, timeout: float, what: str, interval: float = 5.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def run_job(cronjob: str, timeout: float) -> JobOutcome:
    """A Job from ``cronjob``, waited to Complete; a failure raises at once with the Job's logs."""
    job = f"{cronjob.removeprefix('mlstack-')[:40]}-e2e-{int(time.time())}"
    kubectl("-n", NAMESPACE, "create", "job", job, f"--from=cronjob/{cronjob}")
    outcome = wait_for_job([KUBECTL], NAMESPACE, job, timeout)
    print(f"\njob {job} complete in {outcome.seconds:.0f}s\n{outcome.logs}")
    return outcome


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
        wait_for_http(url + self.health, timeout=waits.PORT_FORWARD.seconds, process=self.process)
        return url

    def __exit__(self, *exc):
        stop(self.process, timeout=10)


def seaweedfs() -> PortForward:
    return PortForward(
        kfp_facts.NAMESPACE.value, kfp_facts.SEAWEEDFS_SERVICE.value, kfp_facts.SEAWEEDFS_S3_PORT.value
    )


def kfp_api() -> PortForward:
    return PortForward(
        kfp_facts.NAMESPACE.value,
        kfp_facts.API_SERVICE.value,
        kfp_facts.API_PORT.value,
        health=kfp_facts.API_HEALTH_PATH.value,
    )


def prometheus() -> PortForward:
    return PortForward("monitoring", "kps-prometheus", 9090, health="/-/ready")


def pushgateway() -> PortForward:
    return PortForward(NAMESPACE, "mlstack-pushgateway", 9091, health="/-/ready")


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[dict[str, str]]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def s3_env() -> Iterator[dict[str, str]]:
    """SeaweedFS port-forwarded, and the variables mlstack's storage reads set in this process."""
    credentials = secret(NAMESPACE, "mlstack-s3")
    with seaweedfs() as endpoint:
        with _environ(
            {**credentials, "AWS_DEFAULT_REGION": "us-east-1", "MLSTACK_S3_ENDPOINT_URL": endpoint}
        ) as env:
            yield env


@contextlib.contextmanager
def mlflow_env() -> Iterator[dict[str, str]]:
    """The in-cluster MLflow port-forwarded; its client variables (basic-auth admin) set in this process."""
    auth = secret(NAMESPACE, "mlstack-mlflow-auth")
    with PortForward(NAMESPACE, "mlstack-mlflow", 5000, health="/health") as url:
        env = {
            "MLSTACK_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": auth["admin-username"],
            "MLFLOW_TRACKING_PASSWORD": auth["admin-password"],
        }
        with _environ(env):
            yield env


def aliases() -> dict[str, str]:
    """The registered model's aliases as MLflow holds them now."""
    from mlflow import MlflowClient

    with mlflow_env() as env:
        model = MlflowClient(env["MLSTACK_TRACKING_URI"]).get_registered_model(MODEL)
        return {alias: str(version) for alias, version in model.aliases.items()}


def version_tags(version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    with mlflow_env() as env:
        return dict(MlflowClient(env["MLSTACK_TRACKING_URI"]).get_model_version(MODEL, version).tags)


def kubectl_model(*args: str, extra_env: dict[str, str] | None = None) -> str:
    """``kubectl model ...`` through kubectl's plugin mechanism, with the in-cluster MLflow port-forwarded."""
    with mlflow_env():
        proc = subprocess.run(
            [KUBECTL, "model", *args, "-n", NAMESPACE],
            capture_output=True,
            text=True,
            timeout=waits.KUBECTL_MODEL.seconds,
            env={**os.environ, **(extra_env or {})},
        )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl model {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout
