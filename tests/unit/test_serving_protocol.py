"""v1/v2 parsing and the contract fast path: what a client sees for well- and ill-formed requests."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.core import generator
from mlstack.core.validation import row_reasons
from mlstack.serving.protocol import RequestError, parse_v1, parse_v2
from mlstack.serving.scoring import _fast_check

CONTRACT = generator.loan_contract()
FEATURES = CONTRACT.feature_names
ROWS = generator.generate(3, seed=5)[FEATURES]


def _records():
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in ROWS.to_dict("records")
    ]


def test_v1_lists_and_objects_give_the_same_columns():
    records = _records()
    as_objects = parse_v1({"instances": records}, FEATURES, 10)
    as_lists = parse_v1({"instances": [[r[f] for f in FEATURES] for r in records]}, FEATURES, 10)
    assert as_objects.columns == as_lists.columns
    assert as_objects.rows == 3
    assert as_objects.columns["region"] == ROWS["region"].tolist()


def test_v2_columns_and_matrix_give_the_same_columns():
    records = _records()
    per_column = {
        "inputs": [
            {"name": f, "datatype": "BYTES", "shape": [3], "data": [r[f] for r in records]} for f in FEATURES
        ]
    }
    matrix = {
        "inputs": [
            {
                "name": "x",
                "datatype": "BYTES",
                "shape": [3, len(FEATURES)],
                "data": [[r[f] for f in FEATURES] for r in records],
            }
        ],
        "outputs": [{"name": "probability"}],
    }
    a, b = parse_v2(per_column, FEATURES, 10), parse_v2(matrix, FEATURES, 10)
    assert a.columns == b.columns
    assert not a.want_probabilities and b.want_probabilities


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ([1, 2], "body", "wrong_type"),
        ({}, "instances", "missing_field"),
        ({"instances": []}, "instances", "empty_batch"),
        ({"instances": [[1] * 18] * 11}, "instances", "batch_too_large"),
        ({"instances": [[1, 2]]}, "instances", "wrong_length"),
        ({"instances": [{"age": 3}]}, "annual_income", "missing_feature"),
        ({"instances": [{"colour": 3}]}, "colour", "unknown_feature"),
        ({"instances": [[{"a": 1}] * 18]}, "age", "wrong_type"),
        (
            {"instances": [[1] * 18], "parameters": {"return_probabilities": "yes"}},
            "parameters.return_probabilities",
            "wrong_type",
        ),
    ],
)
def test_v1_mistakes_name_field_and_rule(body, field, rule):
    with pytest.raises(RequestError) as caught:
        parse_v1(body, FEATURES, 10)
    assert (caught.value.field, caught.value.rule) == (field, rule)
    assert caught.value.to_dict()["error"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"inputs": []}, "inputs", "missing_field"),
        (
            {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1, 18], "data": [0] * 18}]},
            "inputs.x.datatype",
            "unknown_datatype",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 18], "data": [0] * 18}]},
            "inputs.x.shape",
            "shape_mismatch",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [0] * 3}]},
            "inputs.x.shape",
            "wrong_length",
        ),
        (
            {"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": [30]}]},
            "annual_income",
            "missing_feature",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [0, 18], "data": []}]},
            "inputs",
            "empty_batch",
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 18], "data": [0] * 18}],
                "outputs": [{"name": "shap"}],
            },
            "outputs",
            "unknown_output",
        ),
    ],
)
def test_v2_mistakes_name_field_and_rule(body, field, rule):
    with pytest.raises(RequestError) as caught:
        parse_v2(body, FEATURES, 10)
    assert (caught.value.field, caught.value.rule) == (field, rule)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["RENT", "car", "salaried", "north", "True", "OWN", "retired"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fast_path_never_accepts_what_row_reasons_rejects(data):
    """The plain-Python check may be stricter than row_reasons, never looser (it only skips it)."""
    feature = data.draw(st.sampled_from(CONTRACT.features))
    typical = ROWS[feature.name].dropna().tolist()
    value = data.draw(st.one_of(json_scalars, st.sampled_from(typical or [None])))
    if feature.name in ("credit_score", "age") and data.draw(st.booleans()):
        value = data.draw(st.floats(min_value=-1000, max_value=1000))
    if _fast_check(feature)(value):
        frame = pd.DataFrame({feature.name: [value]})
        single = CONTRACT.model_copy(update={"features": [feature]})
        assert row_reasons(frame, single).tolist() == [""], (feature.name, value)


def test_fast_path_accepts_the_generators_rows():
    checks = {f.name: _fast_check(f) for f in CONTRACT.features}
    for record in _records():
        assert all(checks[name](value) for name, value in record.items()), record
