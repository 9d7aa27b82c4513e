"""Behavioural tests of the model the real training step builds (Made-With-ML's tests/model).

The expectations come from the generator's label rule (mlstack/core/generator.py), not from the
model: ``region`` and ``application_id`` do not enter it (invariance); a higher credit score lowers
the default risk, more late payments and a higher debt-to-income raise it (directional); an
obviously safe and an obviously risky applicant are classified as such (minimum functionality).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.components.evaluate import evaluate
from mlstack.components.train import split, train
from mlstack.core.generator import REGIONS, generate, loan_contract
from mlstack.core.model import predict
from mlstack.core.settings import TrainingConfig

CONFIG = TrainingConfig()


@pytest.fixture(scope="module")
def model():
    contract = loan_contract()
    train_frame, eval_frame = split(generate(8000, seed=5), contract, CONFIG)
    return train(train_frame, contract, CONFIG), eval_frame


def risk(pipeline, frame: pd.DataFrame) -> np.ndarray:
    return predict(pipeline, frame, loan_contract(), CONFIG.threshold)[1]


def test_minimum_quality_on_held_out_rows(model):
    pipeline, eval_frame = model
    assert evaluate(pipeline, eval_frame, loan_contract(), CONFIG.threshold).metrics["roc_auc"] > 0.75


def test_invariant_to_the_application_id(model):
    pipeline, eval_frame = model
    renumbered = eval_frame.assign(application_id=eval_frame["application_id"] + 123_456)
    np.testing.assert_array_equal(risk(pipeline, renumbered), risk(pipeline, eval_frame))


def test_nearly_invariant_to_the_region(model):
    """Region is noise in the label rule: moving every applicant to another region barely moves risk

    (the fitted region weights are sampling noise: at most 0.066 for any row over 1,600 rows here).
    """
    pipeline, eval_frame = model
    base = risk(pipeline, eval_frame)
    for region in REGIONS:
        moved = np.abs(risk(pipeline, eval_frame.assign(region=region)) - base)
        assert np.median(moved) < 0.01 and moved.max() < 0.1, region


@pytest.mark.parametrize(
    ("column", "change", "direction"),
    [
        ("credit_score", +100, -1),
        ("num_late_payments", +3, +1),
        ("debt_to_income", +0.2, +1),
    ],
)
def test_directional_expectations(model, column, change, direction):
    pipeline, eval_frame = model
    changed = eval_frame.assign(**{column: eval_frame[column] + change})
    delta = risk(pipeline, changed) - risk(pipeline, eval_frame)
    assert (np.sign(delta) == direction).mean() >= 0.99, f"{column} {change:+}: risk moved the wrong way"


def test_losing_the_job_raises_risk(model):
    pipeline, eval_frame = model
    salaried = eval_frame.assign(employment_type="salaried")
    unemployed = eval_frame.assign(employment_type="unemployed", years_employed=0.0)
    assert (risk(pipeline, unemployed) > risk(pipeline, salaried)).mean() >= 0.99


def test_an_obviously_safe_and_an_obviously_risky_applicant(model):
    pipeline, eval_frame = model
    safe = eval_frame.iloc[[0]].assign(
        credit_score=820, debt_to_income=0.05, num_late_payments=0, interest_rate=4.0,
        annual_income=150_000.0, credit_utilization=0.05, employment_type="salaried", loan_purpose="car",
    )  # fmt: skip
    risky = eval_frame.iloc[[0]].assign(
        credit_score=450, debt_to_income=0.75, num_late_payments=6, interest_rate=24.0,
        annual_income=18_000.0, credit_utilization=0.95, employment_type="unemployed",
        loan_purpose="small_business", years_employed=0.0,
    )  # fmt: skip
    labels, probabilities = predict(pipeline, pd.concat([safe, risky]), loan_contract(), CONFIG.threshold)
    assert list(labels) == [0, 1]
    assert probabilities[0] < 0.05 and probabilities[1] > 0.5
