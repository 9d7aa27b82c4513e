"""The drift job on odd windows, and canary labels that are class names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.core.contract import Target
from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import CanaryConfig, DriftConfig
from mlstack.monitoring.canary import analysis as canary_analysis
from mlstack.monitoring.drift.job import evaluate

CONTRACT = loan_contract()


@pytest.fixture(scope="module")
def reference():
    return generate(1200, seed=1)


def test_a_nullable_feature_missing_everywhere_is_missingness_drift(reference):
    current = generate(1100, seed=2)
    current["years_employed"] = np.nan  # nullable in the contract, now never sent
    result = evaluate("loan", "2", reference, current, CONTRACT, DriftConfig()).result
    assert result["status"] == "ok"
    assert result["features"]["years_employed"]["missing_share"]["current"] == 1.0
    assert "years_employed" in result["data_quality"]["missing_drifted"]
    assert result["drift_detected"] is True
    assert result["features"]["annual_income"]["score"] is not None  # the others are still judged


def test_a_reference_below_the_minimum_gives_no_verdict(reference):
    result = evaluate("loan", "2", reference.head(10), generate(1100, seed=3), CONTRACT, DriftConfig()).result
    assert result["status"] == "insufficient_data"
    assert result["drift_detected"] is None
    assert "reference holds 10 rows" in result["message"]


def _labelled(rows: int, accuracy: float, seed: int) -> pd.DataFrame:
    """Rows whose labels are the class names; ``accuracy`` of predictions agree with them."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    right = rng.random(rows) < accuracy
    prediction = np.where(right, truth, 1 - truth)
    return pd.DataFrame(
        {
            "prediction": prediction,
            "probability": np.clip(prediction * 0.6 + rng.random(rows) * 0.3, 0, 1),
            "label": np.where(truth == 1, "malignant", "benign"),
            "model_version": "1",
        }
    )


def test_string_class_labels_count_in_the_canary_analysis():
    target = Target(name="diagnosis", positive="malignant", classes=["benign", "malignant"])
    rows = _labelled(2000, 0.9, seed=5)
    labeled = canary_analysis.labeled_rows(rows, target)
    assert len(labeled) == 2000
    assert labeled["label01"].tolist() == (rows["label"] == "malignant").astype(int).tolist()
    config = CanaryConfig(min_samples=100, min_labeled=100)
    primary = canary_analysis.VariantEvidence("primary", "1", None, rows, target=target)
    canary = canary_analysis.VariantEvidence("canary", "2", None, _labelled(2000, 0.9, seed=6), target=target)
    analysis = canary_analysis.analyze(primary, canary, config)
    accuracy = next(c for c in analysis.checks if c.name == "accuracy")
    assert accuracy.status != "wait" or "labeled rows; need" not in accuracy.reason
    assert analysis.variants["canary"]["labeled"] == 2000
