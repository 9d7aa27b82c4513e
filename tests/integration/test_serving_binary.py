"""The binary tensor extension of the Open Inference Protocol on both servers, framed by KServe's own client types.

Requests are built with ``kserve.InferRequest``/``InferInput.set_data_from_numpy(binary_data=True)``
and ``to_rest()`` (what ``kserve.InferenceRESTClient`` sends: the JSON header, the raw tensors,
``Inference-Header-Content-Length``), answers read with ``InferResponse.from_bytes`` as that client
reads them. The JSON request for the same rows is the reference.
"""

from __future__ import annotations

import math
import struct

import httpx
import numpy as np
import orjson
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from mlstack.core import generator
from tests.fixtures.serving import MODEL_NAME

CONTRACT = generator.loan_contract()
HEADER = "inference-header-content-length"


def _rows(count: int = 12) -> list[dict]:
    frame = generator.generate(count, seed=21)[CONTRACT.feature_names]
    rows = frame.to_dict("records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _datatype(name: str, integers: bool) -> str:
    feature = next(f for f in CONTRACT.features if f.name == name)
    if feature.is_categorical:
        return "BYTES"
    return "INT64" if integers and feature.type == "integer" else "FP64"


def _json_request(rows: list[dict]) -> dict:
    inputs = []
    for name in CONTRACT.feature_names:
        datatype = "BYTES" if _datatype(name, False) == "BYTES" else "FP64"
        inputs.append(
            {"name": name, "datatype": datatype, "shape": [len(rows)], "data": [r[name] for r in rows]}
        )
    return {"inputs": inputs, "parameters": {"return_probabilities": True}}


def _binary_request(rows: list[dict], binary_output: bool = False) -> tuple[bytes, dict]:
    """BYTES for categories, INT64 for integer features, FP64 (NaN = missing) for the rest."""
    inputs = []
    for name in CONTRACT.feature_names:
        datatype = _datatype(name, integers=True)
        values = [r[name] for r in rows]
        if datatype == "BYTES":
            array = np.array([v.encode() for v in values], dtype=np.object_)
        elif datatype == "INT64":
            if any(v is None for v in values):  # a missing integer can only travel as FP64 NaN
                datatype = "FP64"
            array = np.array(
                [np.nan if v is None else v for v in values],
                dtype=np.int64 if datatype == "INT64" else np.float64,
            )
        else:
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        tensor = InferInput(name=name, shape=[len(rows)], datatype=datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    parameters = {"return_probabilities": True} | ({"binary_data_output": True} if binary_output else {})
    request = InferRequest(model_name=MODEL_NAME, infer_inputs=inputs, parameters=parameters)
    body, json_length = request.to_rest()
    assert json_length is not None  # the KServe client really framed it as binary
    return body, {HEADER: str(json_length), "content-type": "application/octet-stream"}


def _outputs(response: httpx.Response) -> dict[str, list]:
    json_length = int(response.headers.get(HEADER, len(response.content)))
    parsed = InferResponse.from_bytes(response.content, json_length)
    return {output.name: output.as_numpy().tolist() for output in parsed.outputs}


def test_binary_requests_answer_like_json(predictor):
    url = f"{predictor.url}/v2/models/{MODEL_NAME}/infer"
    rows = _rows()
    reference = httpx.post(url, json=_json_request(rows), timeout=60)
    assert reference.status_code == 200, reference.text
    expected = _outputs(reference)
    body, headers = _binary_request(rows)
    answer = httpx.post(url, content=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert _outputs(answer) == expected
    assert answer.headers["x-model-version"] == reference.headers["x-model-version"]


def test_binary_answer_when_asked(predictor):
    url = f"{predictor.url}/v2/models/{MODEL_NAME}/infer"
    rows = _rows(5)
    expected = _outputs(httpx.post(url, json=_json_request(rows), timeout=60))
    body, headers = _binary_request(rows, binary_output=True)
    answer = httpx.post(url, content=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    json_length = int(answer.headers[HEADER])
    assert json_length < len(answer.content)  # tensors follow the JSON header
    header = orjson.loads(answer.content[:json_length])
    sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in header["outputs"]}
    assert sizes == {"predict": 8 * len(rows), "probability": 8 * len(rows)}
    assert _outputs(answer) == expected


def _binary_body(size_of_first: int, header: str | None = None) -> tuple[bytes, dict]:
    """One FP64 input per numeric feature and BYTES per category; the first input's size overridden."""
    inputs, chunks = [], []
    for name in CONTRACT.feature_names:
        feature = next(f for f in CONTRACT.features if f.name == name)
        if feature.is_categorical:
            chunk = struct.pack("<I", 1) + b"x"
            inputs.append(
                {"name": name, "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}}
            )
        else:
            chunk = struct.pack("<d", 1.0)
            inputs.append(
                {"name": name, "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}}
            )
        chunks.append(chunk)
    inputs[0]["parameters"]["binary_data_size"] = size_of_first
    chunks[0] = chunks[0][:size_of_first]
    head = orjson.dumps({"inputs": inputs})
    return head + b"".join(chunks), {HEADER: header if header is not None else str(len(head))}


@pytest.mark.parametrize(
    ("size_of_first", "header", "rule"),
    [
        (8, "abc", "invalid_header"),
        (8, "-5", "invalid_header"),
        (8, "99999999", "header_too_long"),
        (8, "7", "invalid_json"),
        (7, None, "binary_size_mismatch"),  # FP64 in 7 bytes
    ],
)
def test_malformed_binary_framing_is_a_400_with_a_json_body(predictor, size_of_first, header, rule):
    body, headers = _binary_body(size_of_first, header)
    answer = httpx.post(
        f"{predictor.url}/v2/models/{MODEL_NAME}/infer", content=body, headers=headers, timeout=60
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["rule"] == rule and error["field"] and error["error"]
    assert predictor.process.poll() is None
