"""A gate that cannot be evaluated fails; the slice feature comes from the contract, never from the generator's column names."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.components.evaluate import champion_metrics, evaluate, judge, slice_feature_for
from mlstack.components.train import split, train
from mlstack.core.contract import DataContract, Feature, Target
from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import GateConfig, TrainingConfig


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_unreachable_registry_is_a_problem_not_no_champion(monkeypatch):
    """On main an unreachable MLflow became "no champion" and the regression gates were skipped."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    frame = generate(50, seed=0)
    nowhere = connect(MlflowAddress(tracking_uri=f"http://127.0.0.1:{_closed_port()}"))
    champion, problem = champion_metrics("loans", nowhere, frame, loan_contract())
    assert champion is None
    assert problem and "cannot read the champion" in problem


def test_no_champion_in_an_empty_registry_is_not_a_problem(tmp_path):
    frame = generate(50, seed=0)
    empty = connect(MlflowAddress(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    champion, problem = champion_metrics("loans", empty, frame, loan_contract())
    assert (champion, problem) == (None, None)


def test_a_problem_fails_the_verdict_with_the_reason():
    gates = GateConfig(minimum={"roc_auc": 0.5}, maximum={}, max_regression={"roc_auc": 0.01})
    verdict = judge({"roc_auc": 0.9}, gates, None, "cannot read the champion: 401")
    assert not verdict.passed
    assert (
        verdict.reasons[-1] == "regression gates could not be evaluated: cannot read the champion: 401: FAIL"
    )
    assert judge({"roc_auc": 0.9}, gates, None).passed  # no champion at all: nothing to regress from


def _own_contract() -> DataContract:
    return DataContract(
        name="own",
        target=Target(name="y", positive=1),
        features=[
            Feature(name="x", type="numeric"),
            Feature(name="colour", type="categorical", categories=["red", "blue"]),
            Feature(name="size", type="categorical", categories=["s", "m", "l"]),
        ],
    )


def test_slice_feature_from_the_contract():
    assert slice_feature_for(loan_contract(), None) == "loan_purpose"  # 7 categories, the most
    assert slice_feature_for(_own_contract(), None) == "size"
    numeric_only = DataContract(target=Target(name="y"), features=[Feature(name="x", type="numeric")])
    assert slice_feature_for(numeric_only, None) is None
    with pytest.raises(ValueError, match="'loan_purpose' is not a feature of contract 'own'"):
        slice_feature_for(_own_contract(), "loan_purpose")


def test_own_data_with_the_shipped_config_evaluates():
    """On main the shipped config's slice_feature (loan_purpose) raised KeyError on any other data."""
    from mlstack.core.settings import load_settings
    from mlstack.pipelines.training import DEFAULT_CONFIG

    config = load_settings(shipped=DEFAULT_CONFIG).training
    rows = 400
    frame = pd.DataFrame(
        {
            "x": [i / rows for i in range(rows)],
            "colour": ["red", "blue"] * (rows // 2),
            "size": ["s", "m", "l", "m"] * (rows // 4),
            "y": [int(i % 5 == 0 or i > 300) for i in range(rows)],
        }
    )
    contract = _own_contract()
    train_frame, eval_frame = split(frame, contract, TrainingConfig(test_size=0.5))
    result = evaluate(train(train_frame, contract, config), eval_frame, contract, 0.5, config.slice_feature)
    assert set(result.slices) <= {"size=s", "size=m", "size=l"} and result.slices
