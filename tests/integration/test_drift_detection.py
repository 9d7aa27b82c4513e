"""Detection quality of the real drift job on the generator's scenarios, 20 seeds each.

- ``none``: a false alarm is any alarm (input drift or degraded performance); allowed in <= 5% of windows.
- ``covariate_shift``, ``category_shift``, ``missingness`` at strength 1.0: ``drift_detected`` in >= 95%.
- ``concept_drift`` changes only the labels, so it is judged through feedback: the window carries
  the true labels (as the payload log does once feedback is joined) and ``performance.degraded``
  (online ROC AUC / accuracy versus offline on the reference) must fire in >= 95%.
"""

from __future__ import annotations

import pytest

from mlstack.core.generator import generate, loan_contract
from mlstack.core.model import predict
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift.job import evaluate
from tests.fixtures.monitoring import reference_snapshot, train_loan_pipeline

SEEDS = range(20)
WINDOW_ROWS = 2500


@pytest.fixture(scope="module")
def model_and_reference():
    contract = loan_contract()
    pipeline = train_loan_pipeline(generate(8000, seed=900), contract)
    return contract, pipeline, reference_snapshot(pipeline, generate(5000, seed=901), contract)


def _window(contract, pipeline, scenario: str, seed: int):
    frame = generate(WINDOW_ROWS, seed=1000 + seed, scenario=scenario)
    frame["prediction"], frame["probability"] = predict(pipeline, frame, contract, 0.5)
    frame["label"] = frame.pop(contract.target.name)
    return frame


def _alarms(model_and_reference, scenario: str) -> list[dict]:
    contract, pipeline, reference = model_and_reference
    config = DriftConfig()
    results = []
    for seed in SEEDS:
        outcome = evaluate(
            "loan", "1", reference, _window(contract, pipeline, scenario, seed), contract, config
        )
        result = outcome.result
        assert result["status"] == "ok"
        results.append(
            {"input": result["drift_detected"], "performance": bool(result["performance"]["degraded"])}
        )
    return results


def test_no_false_alarms_on_unshifted_windows(model_and_reference):
    results = _alarms(model_and_reference, "none")
    false_alarms = sum(r["input"] or r["performance"] for r in results)
    print(f"none: {false_alarms}/{len(results)} false alarms")
    assert false_alarms / len(results) <= 0.05


@pytest.mark.parametrize("scenario", ["covariate_shift", "category_shift", "missingness"])
def test_input_shifts_are_detected(model_and_reference, scenario):
    results = _alarms(model_and_reference, scenario)
    detected = sum(r["input"] for r in results)
    print(f"{scenario}: detected {detected}/{len(results)}")
    assert detected / len(results) >= 0.95


def test_concept_drift_is_detected_through_labels(model_and_reference):
    results = _alarms(model_and_reference, "concept_drift")
    detected = sum(r["performance"] for r in results)
    input_alarms = sum(r["input"] for r in results)
    print(
        f"concept_drift: performance alarm {detected}/{len(results)}, input-drift alarm {input_alarms}/{len(results)}"
    )
    assert detected / len(results) >= 0.95
