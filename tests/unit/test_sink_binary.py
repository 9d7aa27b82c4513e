"""The payload sink reads binary-extension (Open Inference v2) requests and answers like their JSON twins.

The KServe logger forwards a request's raw body; its ``Inference-Header-Content-Length`` travels
only when the InferenceService lists it in ``logger.metadataHeaders`` (then in ``ce-metadata``,
kserve@v0.20.0 ``pkg/logger``). Bodies are framed by KServe's own ``InferRequest.to_rest`` /
``InferResponse.to_rest``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from mlstack.core import generator
from mlstack.serving.sink import events
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE, EventError
from mlstack.serving.sink.pairing import pair_rows

NOW = datetime(2026, 11, 27, 10, 16, tzinfo=UTC)
CONTRACT = generator.loan_contract()
ROWS = generator.generate(3, seed=5)[CONTRACT.feature_names].fillna(0).to_dict("records")


def _headers(ce_type: str, **extra) -> dict[str, str]:
    base = {
        "ce-id": "b1",
        "ce-type": ce_type,
        "ce-inferenceservicename": "loans",
        "ce-time": "2026-11-27T10:15:00Z",
    }
    return base | extra


def _request(binary: bool) -> tuple[bytes, int | None]:
    inputs = []
    for feature in CONTRACT.features:
        values = [row[feature.name] for row in ROWS]
        if feature.is_categorical:
            tensor = InferInput(feature.name, [len(ROWS)], "BYTES")
            tensor.set_data_from_numpy(
                np.array([v.encode() for v in values], dtype=np.object_), binary_data=binary
            )
        elif feature.type == "integer":
            tensor = InferInput(feature.name, [len(ROWS)], "INT64")
            tensor.set_data_from_numpy(np.array(values, dtype=np.int64), binary_data=binary)
        else:
            tensor = InferInput(feature.name, [len(ROWS)], "FP64")
            tensor.set_data_from_numpy(np.array(values, dtype=np.float64), binary_data=binary)
        inputs.append(tensor)
    body, length = InferRequest(model_name="loans", infer_inputs=inputs, request_id="r1").to_rest()
    return (body if isinstance(body, bytes) else orjson.dumps(body)), length


def _response(binary: bool) -> bytes:
    output = InferOutput("predict", [len(ROWS)], "INT64")
    output.set_data_from_numpy(np.array([0, 1, 0], dtype=np.int64), binary_data=binary)
    body, _ = InferResponse("r1", "loans", [output], model_version="3", use_binary_outputs=binary).to_rest()
    return body if isinstance(body, bytes) else orjson.dumps(body)


def _rows(request_headers: dict, request_body: bytes, response_body: bytes) -> list[dict]:
    request = events.parse_event(_headers(REQUEST_TYPE) | request_headers, request_body, now=NOW)
    response = events.parse_event(_headers(RESPONSE_TYPE), response_body, now=NOW)
    rows, dropped = pair_rows(request, response, CONTRACT)
    assert not any(dropped.values())
    return [{k: v for k, v in row.items() if k not in ("received_at",)} for row in rows]


@pytest.mark.parametrize("forwarded", ["ce-metadata", "header", "none"])
def test_binary_request_and_answer_give_the_rows_of_their_json_twins(forwarded):
    body, length = _request(binary=True)
    assert length is not None and length < len(body)  # really framed as binary
    extra = {
        "ce-metadata": {
            "ce-metadata": orjson.dumps({"Inference-Header-Content-Length": [str(length)]}).decode()
        },
        "header": {"inference-header-content-length": str(length)},
        "none": {},  # the logger's default: the sink finds where the JSON header ends
    }[forwarded]
    json_body, _ = _request(binary=False)
    expected = _rows({}, json_body, _response(binary=False))
    assert _rows(extra, body, _response(binary=True)) == expected
    assert [row["prediction"] for row in expected] == [0, 1, 0]


def test_binary_framing_mistakes_are_refused_with_field_and_rule():
    body, length = _request(binary=True)
    with pytest.raises(EventError) as refused:
        events.parse_event(
            _headers(REQUEST_TYPE, **{"inference-header-content-length": "abc"}), body, now=NOW
        )
    assert refused.value.rule == "invalid_header"
    with pytest.raises(EventError) as refused:
        events.parse_event(_headers(REQUEST_TYPE), body + b"\x00", now=NOW)
    assert refused.value.rule == "binary_size_mismatch"
