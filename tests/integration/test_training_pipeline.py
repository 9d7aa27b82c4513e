"""The training pipeline end to end: the real CLI, kfp.local, a real `mlflow server` on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from mlstack.core.generator import generate

MLSTACK = str(Path(sys.executable).parent / "mlstack")

# each test runs whole pipelines (tens of seconds each on an idle 2-core machine)
pytestmark = pytest.mark.timeout(1800)


LOAN_CONTRACT = "pipelines/config/loan_contract.yaml"


def run_cli(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([MLSTACK, *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_pipeline(
    data, env: dict[str, str], contract=LOAN_CONTRACT, config=None
) -> subprocess.CompletedProcess:
    """`mlstack pipeline run --local --json` on ``data`` with a contract (and a config file)."""
    args = ["pipeline", "run", "--local", "--json", "--data", str(data), "--contract", str(contract)]
    return run_cli(args + (["--config", str(config)] if config else []), env)


@pytest.fixture
def cli_env(mlstack_home, mlflow_server, request) -> dict[str, str]:
    """Environment for one test: its own home, the shared MLflow server, a model name of its own."""
    env = dict(os.environ)
    env["MLSTACK_HOME"] = str(mlstack_home)
    env["MLSTACK_TRACKING_URI"] = mlflow_server
    env["MLSTACK_TRAINING__MODEL_NAME"] = "it-" + request.node.name.replace("_", "-")[:40].lower()
    env["MLSTACK_LOG_FORMAT"] = "text"
    return env


@pytest.fixture
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)


def versions_of(client: MlflowClient, name: str) -> list:
    return client.search_model_versions(f"name='{name}'")


def test_two_runs_give_champion_then_challenger_with_equal_predictions(cli_env, client, tmp_path):
    data = tmp_path / "train.parquet"
    generate(20_000, seed=3).to_parquet(data)
    first = run_pipeline(data, cli_env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_pipeline(data, cli_env)
    assert second.returncode == 0, second.stderr[-3000:]
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert set(one) >= {
        "run_id",
        "model_name",
        "model_version",
        "aliases",
        "metrics",
        "gates",
        "data_fingerprint",
        "predictions_sha256",
    }
    assert (one["model_version"], one["aliases"]) == ("1", ["champion"])
    assert (two["model_version"], two["aliases"]) == ("2", ["challenger"])
    assert one["predictions_sha256"] == two["predictions_sha256"]
    assert one["data_fingerprint"] == two["data_fingerprint"]
    assert two["gates"]["passed"] and any("vs champion" in r for r in two["gates"]["reasons"])

    name = one["model_name"]
    model = client.get_registered_model(name)
    assert model.aliases == {"champion": "1", "challenger": "2"}
    version = client.get_model_version(name, "2")
    for tag in (
        "data_fingerprint",
        "git_commit",
        "config_hash",
        "lock_sha256",
        "pipeline_run_id",
        "gate_verdict",
        "predictions_sha256",
    ):
        assert version.tags.get(tag), f"version tag {tag} missing"
    assert version.tags["predictions_sha256"] == two["predictions_sha256"]
    assert version.tags["gate_verdict"] == "passed"
    # the drift reference travels with the model's run
    reference = client.download_artifacts(version.run_id, "reference/reference.parquet", str(tmp_path))
    snapshot = pd.read_parquet(reference)
    assert {"prediction", "probability", "credit_score"} <= set(snapshot.columns) and len(snapshot) == 5000


@pytest.mark.parametrize(
    "breakage, column, rule",
    [
        ("drop", "credit_score", "required column is missing"),
        ("type", "annual_income", "text where the contract says a number"),
        ("range", "debt_to_income", "above the allowed maximum"),
    ],
)
def test_bad_data_stops_the_run_naming_column_and_rule(cli_env, client, tmp_path, breakage, column, rule):
    frame = generate(3000, seed=4)
    if breakage == "drop":
        frame = frame.drop(columns=[column])
    elif breakage == "type":
        frame[column] = frame[column].astype(str)
        frame.loc[::10, column] = (
            "unknown"  # text in a numeric column (not "n/a": CSV readers take that as missing)
        )
    else:
        frame.loc[:59, column] = 1.7  # 2% of rows, tolerance is 1%
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    result = run_pipeline(data, cli_env)
    assert result.returncode == 1
    # --json: exactly one JSON object on stdout, on failure too, carrying the one error line
    failure = json.loads(result.stdout)
    assert failure["exit_code"] == 1 and column in failure["error"] and rule in failure["error"]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: data validation failed") and column in last_line and rule in last_line
    assert "Traceback" not in result.stderr
    assert versions_of(client, cli_env["MLSTACK_TRAINING__MODEL_NAME"]) == []


def test_failing_gate_logs_a_run_but_registers_nothing(cli_env, client, tmp_path):
    config = yaml.safe_load(Path("pipelines/config/training.yaml").read_text())
    config["training"]["gates"]["minimum"]["roc_auc"] = 0.99
    config_file = tmp_path / "strict.yaml"
    config_file.write_text(yaml.safe_dump(config))
    data = tmp_path / "train.parquet"
    generate(5000, seed=5).to_parquet(data)
    result = run_pipeline(data, cli_env, config=config_file)
    assert result.returncode == 1, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["gates"]["passed"] is False and out["model_version"] is None and out["aliases"] == []
    assert any("roc_auc" in r and r.endswith("FAIL") for r in out["gates"]["reasons"])
    assert "quality gates failed" in result.stderr
    run = client.get_run(out["run_id"])
    assert run.data.tags["gate_verdict"] == "failed" and "roc_auc" in run.data.metrics
    assert versions_of(client, cli_env["MLSTACK_TRAINING__MODEL_NAME"]) == []


def test_inferred_contract_on_a_foreign_csv_runs_the_whole_pipeline(cli_env, client, tmp_path):
    from sklearn.datasets import load_breast_cancer  # ships with scikit-learn: no download

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame.insert(0, "patient", range(len(frame)))
    frame["size_band"] = pd.cut(
        frame["mean_radius"], [0, 12, 15, 100], labels=["small", "medium", "large"]
    ).astype(str)
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    data = tmp_path / "cancer.csv"
    frame.to_csv(data, index=False)
    contract = tmp_path / "contract.yaml"
    inferred = run_cli(
        [
            "data",
            "infer-contract",
            str(data),
            "--target",
            "diagnosis",
            "--id-column",
            "patient",
            "--out",
            str(contract),
        ],
        cli_env,
    )
    assert inferred.returncode == 0, inferred.stderr
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "training": {
                    "gates": {"minimum": {"roc_auc": 0.9}, "maximum": {}, "max_regression": {}},
                    "slice_feature": "size_band",
                }
            }
        )
    )
    env = dict(cli_env, MLSTACK_TRAINING__MODEL_NAME="cancer-it")
    result = run_pipeline(data, env, contract=contract, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["model_name"] == "cancer-it" and out["aliases"] == ["champion"]
    assert out["metrics"]["roc_auc"] > 0.95
    # the registered model serves its own contract: load it back and score the CSV
    from mlstack.adapters.mlflow import MlflowAddress, connect
    from mlstack.core import model as model_format

    loaded = connect(MlflowAddress(tracking_uri=cli_env["MLSTACK_TRACKING_URI"])).load_model(
        "cancer-it@champion"
    )
    assert loaded.contract.target.positive == "malignant" and "size_band" in loaded.feature_names
    predictions, _ = model_format.predict(loaded.pipeline, frame, loaded.contract, loaded.threshold)
    accuracy = ((predictions == 1) == (frame["diagnosis"] == "malignant")).mean()
    assert accuracy > 0.9


def test_compiled_ir_loads_back_with_the_gate_condition(tmp_path):
    from kfp import components

    result = subprocess.run(
        [MLSTACK, "pipeline", "compile", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    component = components.load_component_from_file(str(path))
    assert component.name == "mlstack-training"
    spec = next(yaml.safe_load_all(path.read_text()))  # then the Kubernetes platform spec
    conditions = []

    def walk(node):
        if isinstance(node, dict):
            if "condition" in node and isinstance(node["condition"], str):
                conditions.append(node["condition"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert any("decision" in c and "'passed'" in c for c in conditions), conditions
    assert {"data_uri", "contract_yaml", "config_json", "tracking_uri"} <= set(
        spec["root"]["inputDefinitions"]["parameters"]
    )


def test_two_concurrent_local_runs_on_a_fresh_home_take_turns(mlstack_home, tmp_path):
    """Two `pipeline run --local` at once on a fresh home (its own SQLite MLflow) take turns.

    Without the home lock both created the MLflow tables (``table latest_metrics already exists``)
    and raced on the aliases; now the second waits, and each JSON's aliases are the registry's.
    """
    data = tmp_path / "train.parquet"
    generate(20_000, seed=3).to_parquet(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env.update(MLSTACK_HOME=str(mlstack_home), MLSTACK_LOG_FORMAT="text", MLSTACK_TRAINING__MODEL_NAME="race")
    args = [MLSTACK, "pipeline", "run", "--local", "--json", "--data", str(data), "--contract", LOAN_CONTRACT]
    runs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in "ab"
    ]
    outputs = [run.communicate(timeout=900) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    assert sum("waiting for another local run" in stderr for _, stderr in outputs) == 1
    results = sorted((json.loads(stdout) for stdout, _ in outputs), key=lambda r: int(r["model_version"]))
    assert [(r["model_version"], r["aliases"]) for r in results] == [
        ("1", ["champion"]),
        ("2", ["challenger"]),
    ]
    tracking = f"sqlite:///{mlstack_home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    aliases = client.get_registered_model("race").aliases  # versions are ints from a SQLite store
    assert {alias: str(v) for alias, v in aliases.items()} == {"champion": "1", "challenger": "2"}
