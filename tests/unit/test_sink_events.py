"""CloudEvent checks and request/response pairing into payload-log rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

from mlstack.serving.sink import events
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE, EventError
from mlstack.serving.sink.pairing import pair_rows, rows_frame

NOW = datetime(2026, 11, 27, 10, 16, tzinfo=UTC)  # the receive time: the ce-times below are sane


def parse_event(hdrs: dict, body: bytes):
    return events.parse_event(hdrs, body, now=NOW)


def headers(ce_type: str, ce_id: str = "abc", **extra) -> dict[str, str]:
    return {
        "ce-id": ce_id,
        "ce-type": ce_type,
        "ce-inferenceservicename": "loans",
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "ce-time": "2026-11-27T10:15:00Z",
    } | extra


def test_v1_pair_becomes_one_row_per_instance():
    request = parse_event(
        headers(REQUEST_TYPE),
        orjson.dumps({"instances": [{"age": 30, "region": "north"}, {"age": 50, "region": None}]}),
    )
    response = parse_event(
        headers(RESPONSE_TYPE, **{"ce-time": "2026-11-27T10:15:00.004Z"}),
        orjson.dumps(
            {"predictions": [0, 1], "probabilities": [0.1, 0.9], "model_name": "loans", "model_version": "3"}
        ),
    )
    rows = rows_frame(pair_rows(request, response)[0])
    assert rows["row_index"].tolist() == [0, 1]
    assert rows["age"].tolist() == [30, 50]
    assert rows["prediction"].tolist() == [0, 1]
    assert rows["probability"].tolist() == [0.1, 0.9]
    assert set(rows["model_version"]) == {"3"} and set(rows["request_id"]) == {"abc"}
    assert rows["requested_at"].iloc[0].hour == 10


def test_v2_pair_without_probabilities():
    request = parse_event(
        headers(REQUEST_TYPE),
        orjson.dumps({"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "data": [30, 40]}]}),
    )
    response = parse_event(
        headers(RESPONSE_TYPE),
        orjson.dumps(
            {
                "model_name": "loans",
                "model_version": "9",
                "id": "x",
                "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]}],
            }
        ),
    )
    rows = rows_frame(pair_rows(request, response)[0])
    assert rows["age"].tolist() == [30, 40] and rows["prediction"].tolist() == [1, 0]
    assert all(math.isnan(p) for p in rows["probability"])
    assert set(rows["model_version"]) == {"9"}


@pytest.mark.parametrize(
    ("hdrs", "body", "field", "rule"),
    [
        ({"ce-type": REQUEST_TYPE, "ce-inferenceservicename": "x"}, b"{}", "ce-id", "missing_header"),
        (headers("com.example.other"), b"{}", "ce-type", "unknown_type"),
        (headers(REQUEST_TYPE), b"not json", "body", "invalid_json"),
        (headers(REQUEST_TYPE), b"[1]", "body", "wrong_type"),
        (headers(REQUEST_TYPE), b'{"foo": 1}', "body", "unknown_payload"),
        (headers(RESPONSE_TYPE), b'{"foo": 1}', "body", "unknown_payload"),
        (headers(REQUEST_TYPE, **{"ce-time": "yesterday"}), b'{"instances": []}', "ce-time", "invalid_time"),
    ],
)
def test_bad_events_are_refused_with_field_and_rule(hdrs, body, field, rule):
    with pytest.raises(EventError) as caught:
        parse_event(hdrs, body)
    assert (caught.value.field, caught.value.rule, caught.value.status) == (field, rule, 400)


def test_request_and_response_that_disagree_cannot_pair():
    request = parse_event(headers(REQUEST_TYPE), b'{"instances": [[1], [2]]}')
    response = parse_event(headers(RESPONSE_TYPE), b'{"predictions": [1]}')
    with pytest.raises(EventError) as caught:
        pair_rows(request, response)
    assert caught.value.rule == "pair_mismatch" and caught.value.status == 422


@pytest.mark.parametrize(("odd", "text"), [("sixty", "sixty"), (True, "true"), (40.5, 40.5)])
def test_without_contract_a_column_of_mixed_types_is_stored_as_text(tmp_path, odd, text):
    """Issue 14 fuzz: ``40`` beside ``"sixty"`` (or ``true``) in one column, no contract: the pair
    was quarantined (Arrow cannot convert the column), so an acknowledged pair was not stored."""
    from mlstack.core import payload

    request = parse_event(
        headers(REQUEST_TYPE), orjson.dumps({"instances": [{"age": odd}, {"age": 41}, {"age": None}]})
    )
    response = parse_event(
        headers(RESPONSE_TYPE), orjson.dumps({"predictions": [0, 1, 0], "model_version": "3"})
    )
    payload.write_predictions(str(tmp_path), rows_frame(pair_rows(request, response)[0]))
    stored = payload.read_partitioned(str(tmp_path / "predictions"), ["inference_service"])
    assert stored["age"].tolist()[:2] == (
        [text, "41"] if isinstance(text, str) else [40.5, 41.0]
    )  # one type: as sent
    assert stored["age"].isna().tolist()[2]
