"""One micro-batch, no Kafka: every event ends as a prediction or a dead letter with its reason, answers
match the predictor's scorer, routing is by key, and payload rows are the sink's rows exactly."""

from __future__ import annotations

import zlib

import numpy as np
import orjson
import pandas as pd
import pytest

from mlstack.core.model import load
from mlstack.serving.protocol import parse_v1, parse_v2, v1_response, v2_response
from mlstack.serving.scoring import Scorer
from mlstack.serving.sink import pairing
from mlstack.serving.sink.events import Event, TimeWindow, describe
from mlstack.serving.stream import records as h
from mlstack.serving.stream.batch import BatchContext, score_batch
from mlstack.serving.stream.dlq import REASON_TEXT, DlqReason
from mlstack.serving.stream.payloads import decode, store_frame
from mlstack.serving.stream.records import InEvent
from mlstack.serving.stream.router import Routing, Served, Variant, bucket
from tests.fixtures.serving import train_model
from tests.fixtures.stream import feature_rows, hostile_events, valid_events

CTX = BatchContext(
    output_topic="out",
    dlq_topic="dlq",
    payload_topic="pay",
    inference_service="loans",
    namespace="ml",
    max_event_bytes=20_000,
)
NOW_NS = 1_800_000_000_000_000_000


@pytest.fixture(scope="module")
def scorers(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream-models")
    one = Scorer(load(str(train_model(root / "one", seed=3)), "loans", "1"))
    two = Scorer(load(str(train_model(root / "two", "hist_gradient_boosting", seed=4)), "loans", "2"))
    return one, two


def events_of(made, partition: int = 0, start: int = 100) -> list[InEvent]:
    return [
        InEvent("features", partition, start + i, 1_799_999_999_000, e.key, e.value, tuple(e.headers))
        for i, e in enumerate(made)
    ]


def test_every_hostile_event_gets_its_documented_reason(scorers):
    one, _ = scorers
    features = one.features
    row = feature_rows(1)[0]
    hostile = hostile_events(row, features, "bad", CTX.max_event_bytes)
    result = score_batch(
        events_of(hostile), Routing("loans", Served(Variant.CHAMPION, "1", one)), CTX, NOW_NS
    )
    dead = {r.key: dict(r.headers) for r in result.records if r.topic == "dlq"}
    assert {k: v[h.DLQ_REASON].decode() for k, v in dead.items()} == {e.key: e.reason for e in hostile}
    assert all(v[h.SOURCE_TOPIC] == b"features" and v[h.SOURCE_OFFSET].isdigit() for v in dead.values())
    assert result.scored == 0 and set(DlqReason) - set(result.dead) == {DlqReason.MODEL_ERROR}
    assert set(REASON_TEXT) == set(DlqReason)


def test_a_dead_letter_keeps_the_value_unless_it_is_too_big_to_fit(scorers):
    one, _ = scorers
    small = InEvent("features", 0, 1, None, b"k", b"{not json", ())
    big = InEvent("features", 0, 2, None, b"k", b"{" + b"x" * 50_000, ())
    ctx = BatchContext(
        output_topic="o", dlq_topic="d", payload_topic="p", inference_service="loans", dlq_value_bytes=4096
    )
    result = score_batch([small, big], Routing("loans", Served(Variant.CHAMPION, "1", one)), ctx, NOW_NS)
    kept, cut = result.records
    assert kept.value == small.value and h.DLQ_ORIGINAL_BYTES not in dict(kept.headers)
    assert cut.value == big.value[:4096] and dict(cut.headers)[h.DLQ_ORIGINAL_BYTES] == b"50001"


def _predictor_answer(scorer: Scorer, body: dict) -> tuple[list[int], list[float]]:
    """What the HTTP predictor's code computes for the same body (serving/app.py, one request)."""
    if "inputs" in body:
        parsed = parse_v2(body, scorer.features, 1000)
    else:
        parsed = parse_v1(body if "instances" in body else {"instances": [body]}, scorer.features, 1000)
    proba = scorer.probabilities(parsed.columns, scorer.check(parsed))
    return (proba >= scorer.model.threshold).astype(int).tolist(), np.asarray(proba, dtype=float).tolist()


def _answer_of(value: bytes) -> tuple[list[int], list[float]]:
    body = orjson.loads(value)
    if "prediction" in body:
        return [body["prediction"]], [body["probability"]]
    if "outputs" in body:
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        return outputs["predict"], outputs["probability"]
    return body["predictions"], body["probabilities"]


def test_answers_are_the_predictors_in_every_form_and_follow_the_key(scorers):
    one, two = scorers
    made = valid_events(feature_rows(300), one.features, "ok")
    # a value the fast check doubts but the contract takes ("40" for a number) goes the predictor's long way
    odd = feature_rows(1, seed=2)[0] | {"age": "40"}
    made.append(type(made[0])(b"odd", orjson.dumps(odd), rows=1, body=odd))
    routing = Routing("loans", Served(Variant.CHAMPION, "1", one), Served(Variant.CHALLENGER, "2", two), 30)
    events = events_of(made)
    result = score_batch(events, routing, CTX, NOW_NS)
    outputs = {r.key: r for r in result.records if r.topic == "out"}
    assert set(outputs) == {e.key for e in made} and result.scored == len(made)
    for event, source in zip(events, made, strict=True):
        challenger = zlib.crc32(event.key) % 100 < 30
        scorer, version, variant = (two, "2", "challenger") if challenger else (one, "1", "champion")
        headers = dict(outputs[event.key].headers)
        assert (headers[h.MODEL_VERSION], headers[h.VARIANT]) == (version.encode(), variant.encode())
        assert headers[h.REQUEST_ID] == f"features/0/{event.offset}".encode()
        predictions, proba = _answer_of(outputs[event.key].value)
        expected_predictions, expected_proba = _predictor_answer(scorer, source.body)
        assert predictions == expected_predictions
        assert proba == pytest.approx(expected_proba, rel=1e-12, abs=1e-15)
    assert 0 < result.variants["challenger"] < result.variants["champion"]


def test_routing_is_a_stable_share_of_keys():
    keys = [f"customer-{i}".encode() for i in range(5000)]
    buckets = [bucket(k, 0, 0) for k in keys]
    assert buckets == [bucket(k, 3, 99) for k in keys]  # the key decides, not where it sits
    assert 0.18 < sum(b < 20 for b in buckets) / len(keys) < 0.22
    assert bucket(None, 1, 7) == bucket(None, 1, 7) == zlib.crc32(b"1:7") % 100


def _sink_rows(body: dict, answer: bytes, contract) -> pd.DataFrame:
    """The rows the payload sink stores for the same request and response (its own code)."""
    request_body = body if ("instances" in body or "inputs" in body) else {"instances": [body]}
    stamp = "2027-01-15T08:00:00+00:00"
    request = Event("id-1", "request", "loans", "ml", "predictor", stamp, orjson.dumps(request_body))
    response = Event("id-1", "response", "loans", "ml", "predictor", stamp, answer)
    describe(request, request_body)
    describe(response, orjson.loads(answer))
    rows, _ = pairing.pair_rows(request, response, contract)
    return pairing.rows_frame(rows, contract)


@pytest.mark.parametrize("form", range(6))
def test_payload_rows_are_the_sinks_rows(scorers, form):
    one, _ = scorers
    made = valid_events(feature_rows(12, seed=5), one.features, "p")
    event = made[form]
    if form == 5:  # a value the contract takes only as text of a number: the sink's per-value rule
        event.body = event.body | {"age": "41", "annual_income": "52000.5"}
        event.value = orjson.dumps(event.body)
    result = score_batch(
        events_of([event]), Routing("loans", Served(Variant.CHAMPION, "1", one)), CTX, NOW_NS
    )
    (answer,) = [r.value for r in result.records if r.topic == "out"]
    chunks = [decode(r.value) for r in result.records if r.topic == "pay"]
    streamed = store_frame(chunks)
    logged = _sink_rows(event.body, _v_answer(answer, event.body), one.contract)
    assert list(streamed.columns) == list(logged.columns) or set(streamed.columns) == set(logged.columns)
    ignore = ["request_id", "component", "requested_at", "responded_at", "namespace"]
    left = streamed.drop(columns=ignore)[sorted(set(logged.columns) - set(ignore))]
    right = logged.drop(columns=ignore)[sorted(set(logged.columns) - set(ignore))]
    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True), check_exact=True)
    assert (streamed["component"] == "stream").all() and (streamed["namespace"] == "ml").all()
    assert str(streamed["requested_at"].dtype) == str(logged["requested_at"].dtype)


def _v_answer(answer: bytes, body: dict) -> bytes:
    """The stream's answer as the predictor's response body (records answer like a v1 request)."""
    parsed = orjson.loads(answer)
    if "prediction" in parsed:
        return orjson.dumps(
            v1_response(
                [parsed["prediction"]], [parsed["probability"]], parsed["model_name"], parsed["model_version"]
            )
        )
    if "outputs" in parsed:
        outputs = {o["name"]: o["data"] for o in parsed["outputs"]}
        return orjson.dumps(v2_response(outputs["predict"], outputs["probability"], "loans", "1", "x"))
    return answer


def test_an_event_time_outside_the_window_is_replaced_and_kept(scorers):
    one, _ = scorers
    (event,) = valid_events(feature_rows(1), one.features, "t")
    stale = InEvent("features", 0, 5, 1_000, event.key, event.value, ())  # 1970
    ctx = BatchContext(
        output_topic="o", dlq_topic="d", payload_topic="p", inference_service="loans", window=TimeWindow()
    )
    result = score_batch([stale], Routing("loans", Served(Variant.CHAMPION, "1", one)), ctx, NOW_NS)
    frame = store_frame([decode(r.value) for r in result.records if r.topic == "p"])
    assert frame["requested_at"].iloc[0] == pd.Timestamp(NOW_NS, tz="UTC")
    assert frame["ce_time_replaced"].iloc[0].startswith("1970-01-01T00:00:01")


def test_the_guide_lists_every_dead_letter_reason_as_the_code_words_it():
    from tests.fixtures.kube_tools import ROOT

    guide = (ROOT / "docs" / "streaming.md").read_text()
    rows = dict(
        line.split(" | ")[:2]
        for line in guide.splitlines()
        if line.startswith("| `") and line.count("|") == 3
    )
    documented = {k.strip("| `"): v.strip(" |") for k, v in rows.items() if k.strip("| `") in set(DlqReason)}
    assert documented == {reason.value: text for reason, text in REASON_TEXT.items()}
