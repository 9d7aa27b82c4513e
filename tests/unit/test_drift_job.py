"""The drift job's core on generator data: verdicts, pinned methods, insufficient data, schema errors, metrics."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlstack.core.errors import CheckFailed, UsageError
from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift import checks as drift_checks
from mlstack.monitoring.drift import metrics
from mlstack.monitoring.drift.inputs import contract_from_frame, parse_window
from mlstack.monitoring.drift.job import evaluate

CONTRACT = loan_contract()


@pytest.fixture(scope="module")
def reference():
    return generate(5000, seed=1)


def test_category_shift_flags_exactly_the_shifted_features(reference):
    result = evaluate(
        "loan", "2", reference, generate(3000, seed=2, scenario="category_shift"), CONTRACT, DriftConfig()
    ).result
    assert result["status"] == "ok"
    assert {n for n, e in result["features"].items() if e["drifted"]} == {"loan_purpose", "employment_type"}
    assert result["drift_detected"] is True
    assert result["drifted_share"] == pytest.approx(2 / 18)


def test_unshifted_window_is_ok_without_drift(reference):
    result = evaluate("loan", "2", reference, generate(3000, seed=3), CONTRACT, DriftConfig()).result
    assert result["drift_detected"] is False
    assert not any(e["drifted"] or e["missing_drifted"] for e in result["features"].values())
    assert result["prediction_drift"] is None  # no prediction columns given


def test_missingness_is_reported_per_feature(reference):
    result = evaluate(
        "loan", "2", reference, generate(3000, seed=4, scenario="missingness"), CONTRACT, DriftConfig()
    ).result
    assert result["data_quality"]["missing_drifted"] == ["credit_utilization", "years_employed"]
    assert result["features"]["years_employed"]["missing_share"]["current"] > 0.25
    assert result["drift_detected"] is True


def test_methods_are_pinned_from_the_reference_not_the_window(reference):
    distinct = {name: reference[name].nunique() for name in CONTRACT.numeric_features}
    pinned = drift_checks.pin_methods(distinct, CONTRACT, DriftConfig())
    assert pinned["annual_income"].method == "wasserstein"
    assert pinned["region"].method == "jensenshannon"
    assert pinned["loan_term_months"].method == "jensenshannon"  # five distinct terms
    tiny = evaluate(
        "loan", "2", reference, generate(1000, seed=5), CONTRACT, DriftConfig(min_rows=1000)
    ).result
    assert (
        tiny["features"]["annual_income"]["method"] == "wasserstein"
    )  # Evidently's default would pick K-S here


def test_too_few_rows_is_insufficient_data_never_no_drift(reference):
    result = evaluate(
        "loan", "2", reference, generate(50, seed=6), CONTRACT, DriftConfig(min_rows=200)
    ).result
    assert result["status"] == "insufficient_data"
    assert result["drift_detected"] is None and result["features"] == {}
    registry = metrics.registry_for(result, finished_at=123.0)
    names = {m.name for m in registry.collect()}
    assert "mlstack_drift_insufficient_data" in names
    assert "mlstack_drift_detected" not in names


def test_schema_mismatch_names_the_columns(reference):
    current = generate(2000, seed=7).drop(columns=["credit_score"])
    current["region"] = 3.0
    current["age"] = "old"
    with pytest.raises(CheckFailed) as caught:
        evaluate("loan", "2", reference, current, CONTRACT, DriftConfig())
    assert "credit_score (missing)" in str(caught.value)
    assert "age" in str(caught.value)


def test_performance_compares_online_with_offline():
    contract = CONTRACT
    reference = pd.DataFrame(
        {"default": [0, 1] * 200, "prediction": [0, 1] * 200, "probability": [0.1, 0.9] * 200}
    )
    good = pd.DataFrame({"label": [0, 1] * 150, "prediction": [0, 1] * 150, "probability": [0.2, 0.8] * 150})
    bad = good.assign(label=[1, 0] * 150)
    config = DriftConfig(min_labeled=200)
    assert drift_checks.performance(reference, good, contract, config)["degraded"] is False
    worse = drift_checks.performance(reference, bad, contract, config)
    assert worse["degraded"] is True and worse["online"]["accuracy"] == 0.0
    few = drift_checks.performance(reference, bad.head(50), contract, config)
    assert few["degraded"] is None and few["labeled_rows"] == 50


def test_registry_carries_feature_and_method_labels(reference):
    result = evaluate(
        "loan", "2", reference, generate(2000, seed=8, scenario="category_shift"), CONTRACT, DriftConfig()
    ).result
    registry = metrics.registry_for(result, finished_at=99.0)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples
    }
    key = ("mlstack_feature_drift_score", (("feature", "loan_purpose"), ("method", "jensenshannon")))
    assert samples[key] == pytest.approx(result["features"]["loan_purpose"]["score"])
    assert samples[("mlstack_drift_detected", ())] == 1.0
    assert samples[("mlstack_drift_last_success_timestamp_seconds", ())] == 99.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("2d", timedelta(days=2))],
)
def test_window_parsing(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0m", "1w"])
def test_bad_window_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_window(text)


def test_contract_from_a_reference_skips_prediction_and_payload_columns():
    frame = pd.DataFrame(
        {"a": [1.0], "b": ["x"], "prediction": [1], "probability": [0.3], "request_id": ["r"]}
    )
    contract = contract_from_frame(frame, "m")
    assert contract.feature_names == ["a", "b"]
    assert contract.feature("b").type == "categorical"


def test_prediction_drift_falls_back_to_the_label_when_probabilities_are_partial(reference):
    """Only some clients asked for probabilities: judging those rows alone would be a biased sample."""
    ref = reference.assign(prediction=(reference["annual_income"] < 40_000).astype(int), probability=0.3)
    current = generate(3000, seed=8)
    current["prediction"] = (current["annual_income"] < 40_000).astype(float)
    current["probability"] = float("nan")
    current.loc[current.index[:100], "probability"] = 0.3
    result = evaluate("loan", "2", ref, current, CONTRACT, DriftConfig()).result
    assert result["prediction_drift"]["column"] == "prediction"
    assert result["prediction_drift"]["method"] == "jensenshannon"
    assert result["outputs"]["probability"].startswith("partial: 100 of 3000 responses carry it")
    assert result["outputs"]["prediction"] == "judged"
    complete = evaluate("loan", "2", ref, current.assign(probability=0.3), CONTRACT, DriftConfig()).result
    assert complete["prediction_drift"]["column"] == "probability"
    assert complete["prediction_drift"]["score"] == 0.0
