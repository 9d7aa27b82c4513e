"""Online answers match offline scoring over v1 and v2, lists/objects/tensors, on both servers.

The model directory carries the compiled artifact (it passed the parity gate when it was saved,
tests/fixtures/serving.py), so the servers answer on the engine that serves by default: onnx.
Online equals the same engine offline bit for bit (same rows, same batch), and matches the
scikit-learn pipeline within the gate (0 label flips, max |dp| <= 1e-6).
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from mlstack.core import generator
from mlstack.core.model import load, predict
from mlstack.core.settings import CompileConfig
from tests.fixtures.serving import MODEL_NAME, MODEL_VERSION

GATE = CompileConfig()  # the shipped limits: 0 label flips, max |dp| 1e-6

EVAL_ROWS = 1000
BATCH = 100


@pytest.fixture(scope="module")
def evaluation(model_dir):
    """The evaluation set (held out: another seed than training) and the offline answers for it."""
    frame = generator.generate(EVAL_ROWS, seed=99)
    model = load(str(model_dir), name=MODEL_NAME)
    assert model.engine == "onnx", model.engine_reason  # the default engine of a compiled version
    # offline scoring: the scikit-learn pipeline itself, the reference the gate compares against
    labels, proba = predict(model.pipeline, frame, model.contract, model.threshold)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame[model.contract.feature_names].to_dict("records")
    ]
    return model.contract.feature_names, records, labels, proba, model, frame


def _v1_lists(features, rows):
    return {
        "instances": [[r[f] for f in features] for r in rows],
        "parameters": {"return_probabilities": True},
    }


def _v1_objects(features, rows):
    return {"instances": rows, "parameters": {"return_probabilities": True}}


def _v2_columns(features, rows):
    inputs = [
        {
            "name": f,
            "datatype": "BYTES" if isinstance(rows[0][f], str) else "FP64",
            "shape": [len(rows)],
            "data": [r[f] for r in rows],
        }
        for f in features
    ]
    return {"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "probability"}]}


def _v2_matrix(features, rows):
    data = [[r[f] for f in features] for r in rows]
    return {
        "inputs": [{"name": "rows", "datatype": "BYTES", "shape": [len(rows), len(features)], "data": data}],
        "parameters": {"return_probabilities": True},
    }


FORMATS = {
    "v1-lists": _v1_lists,
    "v1-objects": _v1_objects,
    "v2-columns": _v2_columns,
    "v2-matrix": _v2_matrix,
}


def _answers(response: httpx.Response, protocol: str) -> tuple[list, list]:
    body = response.json()
    assert body["model_name"] == MODEL_NAME and body["model_version"] == MODEL_VERSION
    assert response.headers["x-model-engine"] == "onnx"
    if protocol == "v1":
        assert response.headers["x-model-version"] == MODEL_VERSION
        return body["predictions"], body["probabilities"]
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    return outputs["predict"], outputs["probability"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_whole_evaluation_set_matches_offline(predictor, evaluation, fmt):
    features, records, offline_labels, offline_proba, model, frame = evaluation
    protocol = fmt.split("-")[0]
    url = (
        f"{predictor.url}/v1/models/{MODEL_NAME}:predict"
        if protocol == "v1"
        else f"{predictor.url}/v2/models/{MODEL_NAME}/infer"
    )
    labels, proba = [], []
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(records), BATCH):
            response = client.post(url, json=FORMATS[fmt](features, records[start : start + BATCH]))
            assert response.status_code == 200, response.text
            got_labels, got_proba = _answers(response, protocol)
            # the same rows through the same engine offline give the same bits (same batch)
            _, batch_proba = model.predict(frame.iloc[start : start + BATCH])
            assert got_proba == batch_proba.tolist()
            labels += got_labels
            proba += got_proba
    mismatches = int(np.sum(np.asarray(labels) != offline_labels))
    assert mismatches <= GATE.max_label_flips
    # against scikit-learn offline: within the parity gate the artifact passed
    assert np.max(np.abs(np.asarray(proba) - offline_proba)) <= GATE.max_abs_diff


def test_single_row_requests_match_offline(predictor, evaluation):
    """One row per request (the production shape) gives the same answers as the batch offline."""
    features, records, offline_labels, offline_proba, model, frame = evaluation
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(records), 20):  # 50 rows, each alone, alternating protocols
            if i % 40 == 0:
                response = client.post(
                    f"{predictor.url}/v1/models/{MODEL_NAME}:predict",
                    json=_v1_objects(features, [records[i]]),
                )
                labels, proba = _answers(response, "v1")
            else:
                response = client.post(
                    f"{predictor.url}/v2/models/{MODEL_NAME}/infer", json=_v2_matrix(features, [records[i]])
                )
                labels, proba = _answers(response, "v2")
            assert labels == [int(offline_labels[i])]
            _, alone = model.predict(frame.iloc[[i]])
            assert proba == alone.tolist()
            assert math.isclose(proba[0], float(offline_proba[i]), rel_tol=0, abs_tol=GATE.max_abs_diff)
