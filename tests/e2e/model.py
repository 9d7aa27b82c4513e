"""The served model in the e2e: the InferenceService, traffic through Kourier, the pipeline that trains it."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime

import httpx

from tests.e2e import waits
from tests.e2e.cluster import (
    INGRESS,
    MLSTACK,
    MODEL,
    NAMESPACE,
    PAYLOAD_STORE,
    kfp_api,
    kubectl,
    kubectl_json,
    seaweedfs,
    secret,
)

TRAINING_DATA = "s3://mlstack/data/train.parquet"


def isvc() -> dict:
    return kubectl_json("-n", NAMESPACE, "get", "inferenceservice", MODEL)


def isvc_exists() -> bool:
    return kubectl("-n", NAMESPACE, "get", "inferenceservice", MODEL, check=False).returncode == 0


def isvc_ready() -> bool:
    conditions = isvc().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def traffic() -> list[dict]:
    return isvc()["status"]["components"]["predictor"].get("traffic", [])


def split_at(percent: int) -> bool:
    return isvc_ready() and any(t.get("percent") == percent for t in traffic())


def predictor_host() -> str:
    return httpx.URL(isvc()["status"]["components"]["predictor"]["url"]).host


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


def versions_served(requests: int, seed: int = 0, rows_per_request: int = 1) -> Counter:
    """Send requests through Kourier (an ordinary client: no probabilities asked); count rows per version."""
    counts: Counter = Counter()
    rows = sample_instances(requests * rows_per_request, seed)
    host = predictor_host()
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(rows), rows_per_request):
            batch = rows[start : start + rows_per_request]
            response = client.post(
                f"{INGRESS}/v1/models/{MODEL}:predict", json={"instances": batch}, headers={"Host": host}
            )
            assert response.status_code == 200, response.text
            counts[str(response.json()["model_version"])] += len(batch)
    return counts


def payload_rows(since: datetime) -> Counter:
    """Rows the payload sink stored in S3 since ``since``, per model version (read as drift and analysis
    read them); call inside ``s3_env()``."""
    from mlstack.core.payload import load_window

    frame = load_window(PAYLOAD_STORE, MODEL, since=since)
    return Counter({str(v): int(n) for v, n in frame["model_version"].value_counts().items()})


def run_training_pipeline() -> None:
    """Training data into SeaweedFS, then the training pipeline on KFP, waited to success."""
    import kfp

    env = {**os.environ, **secret(NAMESPACE, "mlstack-s3"), "AWS_DEFAULT_REGION": "us-east-1"}
    with seaweedfs() as s3:
        generate = subprocess.run(
            [MLSTACK, "data", "generate", "--rows", "20000", "--seed", "1", "--out", TRAINING_DATA],
            capture_output=True,
            text=True,
            timeout=waits.DATA_UPLOAD.seconds,
            env={**env, "MLSTACK_S3_ENDPOINT_URL": s3},
        )
        assert generate.returncode == 0, generate.stderr[-2000:]
    env["MLSTACK_COMPONENT_IMAGE"] = os.environ.get("MLSTACK_COMPONENT_IMAGE", "localhost:5001/mlstack:dev")
    env["MLSTACK_TRAINING__MODEL_NAME"] = MODEL  # register under the name the chart serves
    # the first run's deploy step creates the InferenceService; later versions go through kubectl model
    env["MLSTACK_CANARY__DEPLOY"] = "true" if not isvc_exists() else "false"
    with kfp_api() as kfp_host:
        submit = subprocess.run(
            [
                MLSTACK,
                "pipeline",
                "submit",
                "--host",
                kfp_host,
                "--json",
                "--data",
                TRAINING_DATA,
                "--tracking-uri",
                f"http://mlstack-mlflow.{NAMESPACE}.svc.cluster.local:5000",
            ],
            capture_output=True,
            text=True,
            timeout=waits.PIPELINE_SUBMIT.seconds,
            env=env,
        )
        assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]
        run_id = json.loads(submit.stdout)["run_id"]
        run = kfp.Client(host=kfp_host).wait_for_run_completion(run_id, timeout=waits.PIPELINE_RUN.seconds)
    assert run.state == "SUCCEEDED", f"pipeline run {run_id} ended {run.state}"
