"""Registration attaches the compiled artifact only when it passes the gate, and tags the version either way."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.core.settings import CompileConfig, TrainingConfig
from tests.fixtures.registered import register_trained


def _registry(uri: str):
    return connect(MlflowAddress(tracking_uri=uri))


def _register(tmp_path, name: str, compile_config: CompileConfig):
    config = TrainingConfig(
        model_name=name, estimator="hist_gradient_boosting", params={"max_iter": 30}, compile=compile_config
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result, rows = register_trained(_registry(uri), config, "compile-test")
    return uri, result, rows


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path))
    return tmp_path


def test_a_passing_export_is_attached_and_served_from_the_registry(home):
    uri, result, rows = _register(home, "compiled-ok", CompileConfig())
    tags = MlflowClient(uri).get_model_version("compiled-ok", result["model_version"]).tags
    assert tags["compiled_engine"] == "onnx" and tags["compiled_label_flips"] == "0"
    assert tags["compiled_rows"] == str(rows) and 0 < float(tags["compiled_max_abs_diff"]) <= 1e-6
    assert tags["gate_verdict"] == "passed"  # the lineage tags are still there
    model = _registry(uri).load_model(f"compiled-ok/{result['model_version']}")
    assert model.engine == "onnx", model.engine_reason


def test_a_failing_export_is_registered_without_it_and_says_why(home):
    uri, result, _ = _register(home, "compiled-no", CompileConfig(max_abs_diff=1e-12))
    tags = MlflowClient(uri).get_model_version("compiled-no", result["model_version"]).tags
    assert tags["compiled_engine"] == "none" and tags["compiled_reason"].startswith("parity gate failed")
    model = _registry(uri).load_model(f"compiled-no/{result['model_version']}")
    assert model.engine == "sklearn" and "parity gate failed" in model.engine_reason
