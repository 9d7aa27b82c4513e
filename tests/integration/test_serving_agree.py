"""Both servers (lean and the stock ``kserve.ModelServer``) answer the same malformed corpus alike.

The README says the two behave alike; this sends every body below to both and compares status and
JSON body exactly. Before the shared front door (``serving/decoding.py`` via ``request_guard``), the
stock server answered 500 to ``Inference-Header-Content-Length: abc`` and to an FP64 input in 7
bytes, 200 to a shape of ``[1.0]`` and to bytes no input accounted for, and other rules (pydantic's
``list_type``, ``float_type``...) to most of the rest.
"""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest

from tests.fixtures.serving import MODEL_NAME, start_predictor

HEADER = "inference-header-content-length"
ROW = {
    "age": 40,
    "annual_income": 52000.0,
    "years_employed": 3.5,
    "credit_score": 700,
    "debt_to_income": 0.2,
    "loan_amount": 10000.0,
    "loan_term_months": 36,
    "interest_rate": 10.5,
    "num_open_accounts": 5,
    "num_late_payments": 0,
    "credit_utilization": 0.3,
    "months_since_last_delinquency": 12.0,
    "savings_balance": 1000.0,
    "num_dependents": 1,
    "home_ownership": "RENT",
    "loan_purpose": "car",
    "employment_type": "salaried",
    "region": "north",
}


def _inputs(**change) -> list[dict]:
    return [
        {"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [1], "data": [v]} | change
        for k, v in ROW.items()
    ]


def _v2(**extra) -> tuple[bytes, dict]:
    return json.dumps({"inputs": _inputs()} | extra).encode(), {"content-type": "application/json"}


def _json(body) -> tuple[bytes, dict]:
    return json.dumps(body).encode(), {"content-type": "application/json"}


def _binary(mutate=None, header: str | None = None, tail: bytes = b"") -> tuple[bytes, dict]:
    inputs, chunks = [], []
    for name, value in ROW.items():
        if isinstance(value, str):
            chunk, datatype = struct.pack("<I", len(value)) + value.encode(), "BYTES"
        else:
            chunk, datatype = np.array([value], dtype="<f8").tobytes(), "FP64"
        inputs.append(
            {"name": name, "datatype": datatype, "shape": [1], "parameters": {"binary_data_size": len(chunk)}}
        )
        chunks.append(chunk)
    body = {"inputs": inputs}
    if mutate:
        mutate(body, chunks)
    head = json.dumps(body).encode()
    headers = {
        HEADER: str(len(head)) if header is None else header,
        "content-type": "application/octet-stream",
    }
    return head + b"".join(chunks) + tail, headers


def _set(index: int, key: str, value):
    def mutate(body, _chunks):
        body["inputs"][index]["parameters"][key] = value

    return mutate


def _bad_text(body, chunks):
    chunks[14] = struct.pack("<I", 2) + b"\xff\xfe"
    body["inputs"][14]["parameters"]["binary_data_size"] = 6


def _cut_text(body, chunks):
    chunks[14] = struct.pack("<I", 9) + b"RENT"
    body["inputs"][14]["parameters"]["binary_data_size"] = 8


def _both(body, _chunks):
    body["inputs"][0]["data"] = [40.0]


V2 = {
    "header abc": _binary(header="abc"),
    "header negative": _binary(header="-1"),
    "header past the body": _binary(header="999999"),
    "header inside the JSON": _binary(header="10"),
    "FP64 in 7 bytes": _binary(_set(0, "binary_data_size", 7)),
    "binary_data_size a string": _binary(_set(0, "binary_data_size", "8")),
    "binary_data_size negative": _binary(_set(0, "binary_data_size", -8)),
    "bytes no input accounts for": _binary(tail=b"xx"),
    "data and binary_data_size": _binary(_both),
    "BYTES not UTF-8": _binary(_bad_text),
    "BYTES cut short": _binary(_cut_text),
    "not JSON": (b"{nope", {"content-type": "application/json"}),
    "empty body": (b"", {"content-type": "application/json"}),
    "a JSON array": _json([1, 2]),
    "inputs not a list": _json({"inputs": 5}),
    "FP16 as JSON": _json({"inputs": _inputs(datatype="FP16")[:14] + _inputs()[14:]}),
    "parameter value a list": _v2(parameters={"x": [1]}),
    "parameter value null": _v2(parameters={"x": None}),
    "input parameter an object": _json({"inputs": _inputs(parameters={"a": {}})}),
    "output parameter a list": _v2(outputs=[{"name": "predict", "parameters": {"a": [1]}}]),
    "shape of floats": _json({"inputs": _inputs(shape=[1.0])}),
    "shape of strings": _json({"inputs": _inputs(shape=["1"])}),
    "id a number": _v2(id=5),
    "input without name": _json({"inputs": [{k: v for k, v in i.items() if k != "name"} for i in _inputs()]}),
    "input without data": _json({"inputs": [{k: v for k, v in i.items() if k != "data"} for i in _inputs()]}),
    "datatype a number": _json({"inputs": _inputs(datatype=3)}),
    "outputs an object": _v2(outputs={"name": "predict"}),
    "binary_data_output a string": _v2(parameters={"binary_data_output": "yes"}),
    "data a scalar": _json({"inputs": [i | {"data": i["data"][0]} for i in _inputs()]}),
    "binary_data_size without the header": _json({"inputs": _inputs(parameters={"binary_data_size": 8})}),
    "age out of the contract": _json(
        {"inputs": [i | {"data": [-5]} if i["name"] == "age" else i for i in _inputs()]}
    ),
}
V1 = {
    "v1 not JSON": b"{nope",
    "v1 a JSON array": b"[1]",
    "v1 instances an object": json.dumps({"instances": {}}).encode(),
    "v1 parameters a list": json.dumps({"instances": [ROW], "parameters": [1]}).encode(),
    "v1 empty body": b"",
    "v1 not UTF-8": b'{"instances": ["\xff"]}',
    "v1 NaN literal": b'{"instances": [[NaN]]}',
    "v1 unknown category": json.dumps({"instances": [ROW | {"region": "mars"}]}).encode(),
}


@pytest.fixture(scope="module")
def servers(model_dir, tmp_path_factory):
    started = {
        kind: start_predictor(model_dir, kind, tmp_path_factory.mktemp(f"agree-{kind}"))
        for kind in ("lean", "kserve")
    }
    yield started
    for server in started.values():
        server.stop()


def _answers(servers, path: str, body: bytes, headers: dict) -> dict[str, tuple[int, object]]:
    out = {}
    for kind, server in servers.items():
        response = httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=60)
        out[kind] = (response.status_code, response.json())
    return out


@pytest.mark.parametrize("case", list(V2))
def test_v2_malformed_bodies_get_the_same_4xx_from_both_servers(servers, case):
    body, headers = V2[case]
    answers = _answers(servers, f"/v2/models/{MODEL_NAME}/infer", body, headers)
    status, error = answers["lean"]
    assert 400 <= status < 500 and error["error"] and error["field"] and error["rule"], answers
    assert answers["kserve"] == answers["lean"]


@pytest.mark.parametrize("case", list(V1))
def test_v1_malformed_bodies_get_the_same_4xx_from_both_servers(servers, case):
    answers = _answers(
        servers, f"/v1/models/{MODEL_NAME}:predict", V1[case], {"content-type": "application/json"}
    )
    status, error = answers["lean"]
    assert 400 <= status < 500 and error["error"] and error["field"] and error["rule"], answers
    assert answers["kserve"] == answers["lean"]


def test_a_versioned_v2_path_answers_like_the_plain_one(servers):
    body, headers = _v2()
    for server in servers.values():
        plain = httpx.post(
            f"{server.url}/v2/models/{MODEL_NAME}/infer", content=body, headers=headers, timeout=60
        )
        versioned = httpx.post(
            f"{server.url}/v2/models/{MODEL_NAME}/versions/7/infer", content=body, headers=headers, timeout=60
        )
        assert plain.status_code == versioned.status_code == 200, versioned.text
        assert versioned.json()["outputs"] == plain.json()["outputs"]
