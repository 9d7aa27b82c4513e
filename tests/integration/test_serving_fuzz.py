"""Fuzzing both protocols: no 5xx, every 4xx carries a JSON error naming field and rule, health holds."""

from __future__ import annotations

import json
import math

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.core import generator
from tests.fixtures.serving import MODEL_NAME

CONTRACT = generator.loan_contract()
FEATURES = CONTRACT.feature_names
SEED_ROWS = [
    {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
    for r in generator.generate(20, seed=11)[FEATURES].to_dict("records")
]
EXAMPLES_PER_PROTOCOL = 550

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.floats(min_value=-1e3, max_value=1e3),
    st.text(max_size=6),
    st.sampled_from(["RENT", "car", "salaried", "north", "MORTGAGE"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def row(draw):
    """A real row with some values replaced, dropped or added."""
    base = dict(draw(st.sampled_from(SEED_ROWS)))
    for name in draw(st.lists(st.sampled_from(FEATURES), max_size=3, unique=True)):
        action = draw(st.sampled_from(["value", "drop", "nested"]))
        if action == "value":
            base[name] = draw(scalars)
        elif action == "drop":
            base.pop(name)
        else:
            base[name] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        base[draw(st.text(min_size=1, max_size=6))] = draw(scalars)
    return base


@st.composite
def v1_body(draw):
    rows = draw(st.lists(row(), min_size=0, max_size=4))
    style = draw(st.sampled_from(["objects", "lists", "ragged", "random"]))
    if style == "objects":
        body = {"instances": rows}
    elif style == "lists":
        body = {"instances": [[r.get(f) for f in FEATURES] for r in rows]}
    elif style == "ragged":
        body = {"instances": [list(r.values()) for r in rows]}
    else:
        body = draw(json_values)
    if isinstance(body, dict) and draw(st.booleans()):
        body["parameters"] = draw(st.one_of(st.just({"return_probabilities": True}), json_values))
    return body


@st.composite
def v2_body(draw):
    rows = draw(st.lists(row(), min_size=0, max_size=4))
    style = draw(st.sampled_from(["columns", "matrix", "bad-shape", "random"]))
    datatype = draw(st.sampled_from(["FP64", "BYTES", "INT64", "BOOL", "FP16", "NOPE"]))
    if style == "columns":
        names = sorted({k for r in rows for k in r}) or FEATURES
        inputs = [
            {"name": n, "datatype": datatype, "shape": [len(rows)], "data": [r.get(n) for r in rows]}
            for n in names
        ]
        body = {"inputs": inputs}
    elif style == "matrix":
        data = [[r.get(f) for f in FEATURES] for r in rows]
        body = {
            "inputs": [{"name": "x", "datatype": datatype, "shape": [len(rows), len(FEATURES)], "data": data}]
        }
    elif style == "bad-shape":
        shape = draw(st.lists(st.integers(-2, 30), max_size=3))
        body = {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": draw(json_values)}]}
    else:
        body = {"inputs": draw(json_values)} if draw(st.booleans()) else draw(json_values)
    if isinstance(body, dict) and draw(st.booleans()):
        body["outputs"] = draw(st.one_of(st.just([{"name": "probability"}]), json_values))
    if isinstance(body, dict) and draw(st.booleans()):
        body["id"] = draw(json_values)
    return body


def _raw(body) -> bytes:
    # the stdlib encoder: big integers and NaN literals go out as a careless client would send them
    return json.dumps(body).encode()


def _check(response: httpx.Response, stats: dict) -> None:
    stats["sent"] += 1
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        stats["rejected"] += 1
        body = response.json()  # raises if the body is not JSON
        assert isinstance(body, dict) and body.get("error"), response.text
        if response.status_code in (400, 413):
            assert body.get("field") and body.get("rule"), response.text
    else:
        stats["accepted"] += 1


def test_fuzzed_requests_never_5xx(predictor):
    stats = {"sent": 0, "rejected": 0, "accepted": 0}
    client = httpx.Client(timeout=60, headers={"content-type": "application/json"})
    v1_url = f"{predictor.url}/v1/models/{MODEL_NAME}:predict"
    v2_url = f"{predictor.url}/v2/models/{MODEL_NAME}/infer"
    fuzz = settings(
        max_examples=EXAMPLES_PER_PROTOCOL,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )

    @fuzz
    @given(body=v1_body())
    def v1(body):
        _check(client.post(v1_url, content=_raw(body)), stats)

    @fuzz
    @given(body=v2_body())
    def v2(body):
        _check(client.post(v2_url, content=_raw(body)), stats)

    @settings(max_examples=60, deadline=None, database=None)
    @given(raw=st.binary(max_size=64), url=st.sampled_from([v1_url, v2_url]))
    def garbage(raw, url):
        _check(client.post(url, content=raw), stats)

    v1()
    v2()
    garbage()
    assert stats["sent"] >= 1000
    # both outcomes happened: the fuzzer reached the model, and it was refused often
    assert stats["accepted"] > 20 and stats["rejected"] > 200, stats
    assert client.get(f"{predictor.url}/v2/health/ready").status_code == 200
    assert client.get(f"{predictor.url}/v2/models/{MODEL_NAME}/ready").status_code == 200
    assert predictor.process.poll() is None
    metrics = client.get(f"{predictor.url}/metrics").text
    assert "mlstack_rejected_requests_total" in metrics
