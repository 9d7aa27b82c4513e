"""Positional v1 lists and v2 [n, F] tensors through a real predictor → sink → drift job
give the same verdict as the same rows sent as named objects.

The KServe logger is the one part that cannot run here (it is a Knative queue-proxy sidecar); the
test does what it does per request (kserve v0.20.0 pkg/logger/handler.go): post the request body
and the response body as binary-mode CloudEvents sharing one ce-id.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import orjson
import pytest

from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import DriftConfig
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.fixtures.monitoring import register_loan_model
from tests.fixtures.serving import start_predictor, start_sink

NAME = "parity"
FEATURES = loan_contract().feature_names
BATCH = 50


def _clean(row: dict) -> dict:
    return {k: (None if v != v else v) for k, v in row.items()}


def _bodies(rows: list[dict], shape: str) -> tuple[str, dict]:
    if shape == "named":
        return f"/v1/models/{NAME}:predict", {"instances": rows, "parameters": {"return_probabilities": True}}
    if shape == "positional":
        return f"/v1/models/{NAME}:predict", {
            "instances": [[r[f] for f in FEATURES] for r in rows],
            "parameters": {"return_probabilities": True},
        }
    flat = [r[f] for r in rows for f in FEATURES]
    tensor = {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "BYTES", "data": flat}
    return f"/v2/models/{NAME}/infer", {
        "inputs": [tensor],
        "outputs": [{"name": "predict"}, {"name": "probability"}],
    }


def _event_headers(ce_id: str, kind: str) -> dict[str, str]:
    return {
        "ce-id": ce_id,
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-specversion": "1.0",
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": NAME,
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "content-type": "application/json",
    }


def test_positional_and_tensor_traffic_gives_the_named_verdict(mlflow_server, tmp_path, monkeypatch):

    registered = register_loan_model(mlflow_server, NAME, tmp_path)
    env = {"MLSTACK_TRACKING_URI": mlflow_server, "MLSTACK_MODEL_VERSION": registered.version}
    predictor = start_predictor(f"models:/{NAME}/{registered.version}", "lean", tmp_path, NAME, env)
    shapes = ("named", "positional", "tensor")
    sinks = {
        shape: start_sink(
            str(tmp_path / shape / "store"),
            tmp_path / shape / "wal",
            tmp_path / f"sink-{shape}.log",
            env_extra={"MLSTACK_TRACKING_URI": mlflow_server},
        )
        for shape in shapes
    }
    rows = [_clean(r) for r in generate(400, seed=41, scenario="category_shift")[FEATURES].to_dict("records")]
    try:
        with httpx.Client(timeout=120) as client:
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                for shape in shapes:
                    path, body = _bodies(batch, shape)
                    answer = client.post(f"{predictor.url}{path}", json=body)
                    assert answer.status_code == 200, answer.text
                    ce_id = uuid.uuid4().hex
                    for kind, content in (("request", orjson.dumps(body)), ("response", answer.content)):
                        posted = client.post(
                            sinks[shape].url, headers=_event_headers(ce_id, kind), content=content
                        )
                        assert posted.status_code == 200, posted.text
    finally:
        predictor.stop()
        for sink in sinks.values():
            sink.stop()

    from mlstack.adapters.mlflow import MlflowAddress, connect
    from mlstack.monitoring.drift import job as drift_job

    registry = connect(MlflowAddress(tracking_uri=mlflow_server))
    results = {
        shape: drift_job.run(
            NAME,
            registered.version,
            DriftConfig(min_rows=200),
            registry=registry,
            store=str(tmp_path / shape / "store"),
            workspace_uri=None,
            window=timedelta(hours=1),
        )
        for shape in shapes
    }
    named = results["named"]
    assert named["status"] == "ok" and named["rows"] == len(rows)
    assert named["drift_detected"] is True  # the category shift is seen at all
    for shape in ("positional", "tensor"):
        result = results[shape]
        assert result["rows"] == named["rows"]
        assert result["drift_detected"] == named["drift_detected"]
        assert {n: e["score"] for n, e in result["features"].items()} == pytest.approx(
            {n: e["score"] for n, e in named["features"].items()}
        )
