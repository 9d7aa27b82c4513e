"""`mlstack drift` end to end against a real MLflow server: reference from the registry, payload windows,
workspace snapshots, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlstack.core import payload
from mlstack.core.generator import generate, loan_contract
from tests.fixtures.monitoring import register_loan_model

MLSTACK = str(Path(sys.executable).parent / "mlstack")


def _run(args: list[str], home: Path, tracking: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MLSTACK_HOME": str(home),
        "MLSTACK_TRACKING_URI": tracking,
        "MLSTACK_LOG_LEVEL": "WARNING",
    }
    return subprocess.run([MLSTACK, *args], capture_output=True, text=True, env=env, timeout=300)


def _log_window(store: str, model: str, version: str, frame: pd.DataFrame, when: datetime) -> None:
    rows = frame.copy()
    rows["request_id"] = [f"r{i // 10}" for i in range(len(rows))]
    rows["row_index"] = [i % 10 for i in range(len(rows))]
    rows["inference_service"] = model
    rows["namespace"] = "default"
    rows["component"] = "predictor"
    rows["model_name"] = model
    rows["model_version"] = version
    rows["requested_at"] = when
    rows["responded_at"] = when
    rows = rows.drop(columns=["default", "application_id"])
    payload.write_predictions(store, rows)


@pytest.fixture
def registered(mlflow_server, tmp_path):
    name = f"loan-{uuid.uuid4().hex[:8]}"
    return register_loan_model(mlflow_server, name, tmp_path)


def test_fetches_reference_from_the_registered_version(mlflow_server, registered):
    from mlstack.adapters.mlflow import MlflowAddress, connect
    from mlstack.monitoring.drift import reference

    registry = connect(MlflowAddress(tracking_uri=mlflow_server))
    assert reference.resolve_version(registry, registered.name, None) == registered.version
    fetched = reference.fetch_reference(registry, registered.name, registered.version)
    pd.testing.assert_frame_equal(fetched, registered.reference.reset_index(drop=True), check_dtype=False)
    assert reference.live_versions(registry, registered.name) == {registered.version}


def test_payload_window_drift_json_workspace_and_report(mlflow_server, registered, tmp_path):
    from mlstack.core.model import predict

    home = tmp_path / "home"
    store = str(tmp_path / "store")
    contract = loan_contract()
    from mlstack.adapters.mlflow import MlflowAddress, connect

    model = connect(MlflowAddress(tracking_uri=mlflow_server)).load_model(
        f"{registered.name}/{registered.version}"
    )
    shifted = generate(3000, seed=11, scenario="category_shift")
    shifted["prediction"], shifted["probability"] = predict(
        model.pipeline, shifted, contract, model.threshold
    )
    now = datetime.now(UTC)
    _log_window(store, registered.name, registered.version, shifted, now - timedelta(minutes=10))
    old = generate(3000, seed=12)  # outside the 1h window: must not be read
    old["prediction"], old["probability"] = predict(model.pipeline, old, contract, model.threshold)
    _log_window(store, registered.name, registered.version, old, now - timedelta(hours=5))

    workspace = tmp_path / "ws"
    done = _run(
        [
            "drift",
            "--model",
            registered.name,
            "--window",
            "1h",
            "--store",
            store,
            "--workspace",
            str(workspace),
            "--json",
        ],
        home,
        mlflow_server,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert result["version"] == registered.version
    assert result["rows"] == 3000
    assert result["drift_detected"] is True
    drifted = {name for name, entry in result["features"].items() if entry["drifted"]}
    assert drifted == {"loan_purpose", "employment_type"}
    assert result["features"]["loan_purpose"]["method"] == "jensenshannon"
    assert result["features"]["annual_income"]["method"] == "wasserstein"
    assert result["prediction_drift"]["score"] > 0
    assert set(result) >= {
        "model",
        "version",
        "rows",
        "drift_detected",
        "drifted_share",
        "features",
        "prediction_drift",
        "status",
    }
    # the Evidently workspace has one project for the model with this run; the HTML report exists
    from evidently.ui.workspace import Workspace

    projects = Workspace(str(workspace)).search_project(registered.name)
    assert len(projects) == 1
    assert len(Workspace(str(workspace)).list_runs(projects[0].id)) == 1
    assert (
        Path(result["report"]).read_text().lower().startswith("<!doctype html")
        or "<html" in Path(result["report"]).read_text()[:500].lower()
    )

    again = _run(
        ["drift", "--model", registered.name, "--store", store, "--workspace", str(workspace), "--json"],
        home,
        mlflow_server,
    )
    assert again.returncode == 0, again.stderr
    assert len(Workspace(str(workspace)).list_runs(projects[0].id)) == 2


def test_empty_window_is_insufficient_data_not_no_drift(mlflow_server, registered, tmp_path):
    done = _run(
        ["drift", "--model", registered.name, "--store", str(tmp_path / "empty"), "--json"],
        tmp_path / "home",
        mlflow_server,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "insufficient_data"
    assert result["rows"] == 0
    assert result["drift_detected"] is None


def test_missing_reference_artifact_exits_2(mlflow_server, tmp_path):
    bare = register_loan_model(mlflow_server, f"bare-{uuid.uuid4().hex[:8]}", tmp_path, with_reference=False)
    current = tmp_path / "current.parquet"
    generate(2000, seed=3).to_parquet(current)
    done = _run(["drift", "--model", bare.name, "--current", str(current)], tmp_path / "home", mlflow_server)
    assert done.returncode == 2
    assert "reference/reference.parquet" in done.stderr
    assert "Traceback" not in done.stderr


def test_schema_mismatch_exits_1_naming_columns(mlflow_server, registered, tmp_path):
    current = tmp_path / "current.csv"
    frame = generate(2000, seed=4).drop(columns=["credit_score", "region"])
    frame.to_csv(current, index=False)
    done = _run(
        ["drift", "--model", registered.name, "--current", str(current)], tmp_path / "home", mlflow_server
    )
    assert done.returncode == 1
    assert "credit_score" in done.stderr and "region" in done.stderr
    assert "Traceback" not in done.stderr
