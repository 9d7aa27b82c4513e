"""`mlstack serve` as a user runs it: from the MLflow registry by alias, and with bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.core.model import metadata_for
from tests.conftest import ROOT
from tests.fixtures.serving import TRUSTED_TYPES, fit_pipeline, start_predictor


def _mlstack(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        cwd=ROOT,
        env=os.environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_model_is_one_line_and_exit_2(tmp_path):
    result = _mlstack("serve", "--model", str(tmp_path / "nope"), "--name", "loans")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model ")
    assert "Traceback" not in result.stderr


def test_directory_without_mlmodel_is_refused(tmp_path):
    result = _mlstack(
        "serve", "--model", str(tmp_path), "--name", "loans", env={"MLSTACK_HOME": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "no MLmodel file" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """A model registered as version 1 of 'loans' with alias champion, in a SQLite tracking store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLSTACK_TRACKING_URI", uri)
    registry = connect(MlflowAddress(tracking_uri=uri))
    pipeline, features, contract = fit_pipeline()
    experiment = registry.client.create_experiment(
        "serving-test", artifact_location=str(tmp_path / "artifacts")
    )
    registry.log_sklearn_model(
        registry.client.create_run(experiment).info.run_id,
        pipeline,
        name="model",
        input_example=features.head(3),
        metadata=metadata_for(contract, threshold=0.3),
        registered_model_name="loans",
        skops_trusted_types=TRUSTED_TYPES,
    )
    registry.client.set_registered_model_alias("loans", "champion", "1")
    return uri


def test_serves_a_registry_alias(registered, tmp_path):
    server = start_predictor("models:/loans@champion", "lean", tmp_path, name="loans")
    try:
        body = httpx.get(f"{server.url}/v2/models/loans").json()
        assert body["versions"] == ["7"]  # MLSTACK_MODEL_VERSION (set by the fixture) wins over the registry
    finally:
        server.stop()
    env = {"MLSTACK_MODEL_VERSION": ""}
    server = start_predictor("models:/loans@champion", "lean", tmp_path, name="loans", env_extra=env)
    try:
        answer = httpx.post(
            f"{server.url}/v1/models/loans:predict",
            json={
                "instances": [
                    [
                        40,
                        52000.0,
                        3.5,
                        700,
                        0.2,
                        10000.0,
                        36,
                        10.5,
                        5,
                        0,
                        0.3,
                        12.0,
                        1000.0,
                        1,
                        "RENT",
                        "car",
                        "salaried",
                        "north",
                    ]
                ]
            },
        )
        assert answer.status_code == 200
        assert answer.json()["model_version"] == "1" and answer.headers["x-model-version"] == "1"
    finally:
        server.stop()
