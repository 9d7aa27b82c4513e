"""Which engine serves, said everywhere: v2 metadata, a response header, a metric label, the start log.

A model directory whose export passed the parity gate is served by onnxruntime; one whose export
failed the gate (here: a gate tighter than the float32 tree output can meet) has no artifact and is
served by scikit-learn, and every one of those places says so and why.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import yaml

from mlstack.core import generator
from mlstack.core.compiled import ONNX_PATH
from mlstack.core.model import load, predict
from mlstack.core.settings import CompileConfig
from tests.fixtures.serving import MODEL_NAME, start_predictor, train_model

ROWS = [
    {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
    for r in generator.generate(40, seed=123)[generator.loan_contract().feature_names].to_dict("records")
]


@pytest.fixture(scope="module")
def failed_gate_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("failed-gate") / "loans"
    return train_model(path, "hist_gradient_boosting", compile_config=CompileConfig(max_abs_diff=1e-12))


def _engine_said(url: str, log_text: str) -> dict:
    metadata = httpx.get(f"{url}/v2/models/{MODEL_NAME}").json()
    response = httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    metric_lines = [
        line
        for line in httpx.get(f"{url}/metrics").text.splitlines()
        if line.startswith("mlstack_predicted_rows_total{")
    ]
    return {
        "metadata": metadata,
        "header": response.headers["x-model-engine"],
        "metrics": metric_lines,
        "log": log_text,
        "answers": response.json()["predictions"],
    }


def test_a_model_that_failed_the_gate_is_served_by_sklearn_and_says_why(failed_gate_dir, tmp_path):
    block = yaml.safe_load((failed_gate_dir / "MLmodel").read_text())["metadata"]["mlstack_compiled"]
    assert block["attached"] is False and block["reason"].startswith("parity gate failed")
    assert not (failed_gate_dir / ONNX_PATH).exists()
    server = start_predictor(failed_gate_dir, "lean", tmp_path)
    try:
        said = _engine_said(server.url, "")
    finally:
        server.stop()
    said["log"] = (tmp_path / "predictor-lean.log").read_text()
    assert said["metadata"]["platform"] == "mlstack-sklearn"
    assert said["metadata"]["parameters"]["engine"] == "sklearn"
    assert "parity gate failed" in said["metadata"]["parameters"]["engine_reason"]
    assert said["header"] == "sklearn"
    assert any('engine="sklearn"' in line for line in said["metrics"]), said["metrics"]
    assert "engine sklearn (no compiled artifact used)" in said["log"] and "parity gate failed" in said["log"]
    # and it answers with the pipeline itself
    model = load(str(failed_gate_dir))
    frame = generator.generate(40, seed=123)
    assert said["answers"] == predict(model.pipeline, frame, model.contract, model.threshold)[0].tolist()


def test_a_compiled_model_says_onnx(model_dir, tmp_path):
    server = start_predictor(model_dir, "lean", tmp_path)
    try:
        said = _engine_said(server.url, "")
    finally:
        server.stop()
    log_text = (tmp_path / "predictor-lean.log").read_text()
    assert said["metadata"]["platform"] == "mlstack-onnx"
    assert said["metadata"]["parameters"]["engine"] == "onnx"
    assert "passed the parity gate" in said["metadata"]["parameters"]["engine_reason"]
    assert said["header"] == "onnx"
    assert any('engine="onnx"' in line for line in said["metrics"]), said["metrics"]
    assert "engine onnx" in log_text


def test_engine_sklearn_in_config_turns_the_compiled_engine_off(model_dir, tmp_path):
    server = start_predictor(model_dir, "kserve", tmp_path, env_extra={"MLSTACK_SERVING__ENGINE": "sklearn"})
    try:
        response = httpx.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", json={"instances": ROWS[:3]})
    finally:
        server.stop()
    assert response.status_code == 200 and response.headers["x-model-engine"] == "sklearn"
    assert "engine 'sklearn' was asked for" in (tmp_path / "predictor-kserve.log").read_text()


def test_batching_on_gives_the_same_answers(model_dir, tmp_path):
    """Adaptive batching changes how rows are grouped, never what a row gets."""
    env = {"MLSTACK_SERVING__BATCHING": "true", "MLSTACK_SERVING__BATCH_MAX_WAIT_MS": "5"}
    server = start_predictor(model_dir, "lean", tmp_path, env_extra=env)
    try:
        import concurrent.futures

        def one(row):
            body = {"instances": [row], "parameters": {"return_probabilities": True}}
            return httpx.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=30).json()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, ROWS))
    finally:
        server.stop()
    model = load(str(model_dir))
    labels, proba = model.predict(generator.generate(40, seed=123))
    assert [a["predictions"][0] for a in answers] == labels.tolist()
    np.testing.assert_allclose([a["probabilities"][0] for a in answers], proba, rtol=0, atol=1e-12)
