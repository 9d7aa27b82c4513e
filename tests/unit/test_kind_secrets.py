"""``kind-secrets.sh`` gives the chart its Secrets and the KFP pipeline namespace the copies its steps read.

The script runs for real against a recording kubectl: reads answer from a fixed cluster state,
``create --dry-run=client -o yaml`` is the real kubectl (it needs no server), and every object sent
to ``apply -f -`` is kept for the assertions.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from mlstack.pipelines.cluster_env import (
    ENV_CONFIG_MAP,
    ENV_KEYS,
    MLFLOW_KEYS,
    MLFLOW_SECRET,
    S3_KEYS,
    S3_SECRET,
)
from tests.fixtures.cluster import ROOT
from tests.tools import require

SCRIPT = ROOT / "manifests" / "scripts" / "kind-secrets.sh"


CLUSTER = {  # namespace/secret -> data, as the cluster holds it before the script runs
    "kubeflow/mlpipeline-minio-artifact": {"accesskey": "seaweed-access", "secretkey": "seaweed-secret-123"},
    "mlstack/mlstack-postgres": {"username": "mlflow", "password": "pg-password-456"},
    "mlstack/mlstack-mlflow-auth": {
        "admin-username": "admin",
        "admin-password": "mlflow-password-789",
        "flask-secret-key": "flask-key",
    },
}

FAKE = r'''#!PYTHON
"""Answers reads from CLUSTER, runs client-side creates with the real kubectl, records applies."""
import base64, json, os, subprocess, sys
args = sys.argv[1:]
state = os.environ["FAKE_STATE"]
cluster = json.load(open(os.path.join(state, "cluster.json")))
ns = "default"
if args[:1] == ["-n"]:
    ns, args = args[1], args[2:]
if args[:2] == ["get", "namespace"]:
    sys.exit(0)
if args[:2] == ["get", "secret"]:
    data = cluster.get(f"{ns}/{args[2]}")
    if data is None:
        sys.exit(1)
    if "-o" in args:
        key = args[args.index("-o") + 1].split(".data.")[1].rstrip("}")
        sys.stdout.write(base64.b64encode(data[key].encode()).decode())
    sys.exit(0)
if args[:1] == ["create"] and "--dry-run=client" in args:
    sys.exit(subprocess.run([os.environ["REAL_KUBECTL"], "-n", ns, *args]).returncode)
if args[:3] == ["apply", "-f", "-"]:
    count = len([n for n in os.listdir(state) if n.startswith("applied-")])
    open(os.path.join(state, f"applied-{count:03d}.yaml"), "w").write(sys.stdin.read())
    sys.exit(0)
if args[:1] == ["annotate"]:
    sys.exit(0)
sys.exit(f"fake kubectl: unexpected call {sys.argv[1:]}")
'''


def run_script(tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    fake = tmp_path / "kubectl"
    fake.write_text(FAKE.replace("PYTHON", sys.executable, 1))
    fake.chmod(0o755)
    (tmp_path / "cluster.json").write_text(json.dumps(CLUSTER))
    env = {**os.environ, "FAKE_STATE": str(tmp_path), "REAL_KUBECTL": require("kubectl")}
    out = subprocess.run(
        ["bash", str(SCRIPT), "mlstack", "seaweedfs.kubeflow.svc.cluster.local:8333", str(fake)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    applied = {}
    for path in sorted(tmp_path.glob("applied-*.yaml")):
        obj = yaml.safe_load(path.read_text())
        data = obj.get("data") or {}
        if obj["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        applied[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = data
    return out, applied


def test_pipeline_namespace_gets_the_credentials_and_the_endpoint_the_steps_read(tmp_path):
    out, applied = run_script(tmp_path)
    assert out.returncode == 0, out.stderr
    s3 = applied[("Secret", "kubeflow", S3_SECRET)]
    assert set(s3) == set(S3_KEYS)
    assert s3 == {"AWS_ACCESS_KEY_ID": "seaweed-access", "AWS_SECRET_ACCESS_KEY": "seaweed-secret-123"}
    auth = applied[("Secret", "kubeflow", MLFLOW_SECRET)]
    assert set(auth) == set(MLFLOW_KEYS)  # exactly the keys the pipeline maps to env, no flask key
    assert auth == {"admin-username": "admin", "admin-password": "mlflow-password-789"}
    env = applied[("ConfigMap", "kubeflow", ENV_CONFIG_MAP)]
    assert set(env) == set(ENV_KEYS)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs.kubeflow.svc.cluster.local:8333"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    # the chart's own namespace still gets its S3 secret; existing passwords are not regenerated
    assert applied[("Secret", "mlstack", S3_SECRET)] == s3
    assert ("Secret", "mlstack", "mlstack-mlflow-auth") not in applied
    assert ("Secret", "mlstack", "mlstack-postgres") not in applied


def test_no_secret_value_is_printed(tmp_path):
    out, _ = run_script(tmp_path)
    assert out.returncode == 0, out.stderr
    printed = out.stdout + out.stderr
    for data in CLUSTER.values():
        for value in data.values():
            if len(value) > 6:
                assert value not in printed
    assert "configmap/mlstack-pipeline-env ready in kubeflow" in out.stdout


def test_the_rollout_secrets_are_made_once_in_the_shapes_their_readers_need(tmp_path):
    from cryptography.fernet import Fernet

    out, applied = run_script(tmp_path)
    assert out.returncode == 0, out.stderr
    webhook = applied[("Secret", "mlstack", "mlstack-rollout-webhook")]
    assert set(webhook) == {"webhook-secret"} and len(webhook["webhook-secret"]) >= 16
    key = applied[("Secret", "mlstack", "mlstack-mlflow-webhooks")]["encryption-key"]
    Fernet(
        key.encode()
    )  # MLflow's EncryptedString builds exactly this (store/model_registry/dbmodels/models.py)
    # existing ones are kept: a new webhook secret would no longer match what MLflow stored
    CLUSTER["mlstack/mlstack-rollout-webhook"] = {"webhook-secret": "kept-secret-0123456789"}
    CLUSTER["mlstack/mlstack-mlflow-webhooks"] = {"encryption-key": key}
    try:
        (tmp_path / "again").mkdir()
        out, applied = run_script(tmp_path / "again")
    finally:
        del CLUSTER["mlstack/mlstack-rollout-webhook"], CLUSTER["mlstack/mlstack-mlflow-webhooks"]
    assert ("Secret", "mlstack", "mlstack-rollout-webhook") not in applied
    assert ("Secret", "mlstack", "mlstack-mlflow-webhooks") not in applied
