"""The compiled pipelines give the steps that touch S3 or MLflow their credentials on a cluster.

KFP runs steps in its own namespace; the compiled platform spec must name the Secrets and the
ConfigMap through pipeline parameters whose defaults are the names the chart and
``kind-secrets.sh`` use, and every reference must be optional.
"""

from __future__ import annotations

import yaml

from mlstack.pipelines.batch_scoring import batch_scoring
from mlstack.pipelines.cluster_env import (
    ENV_CONFIG_MAP,
    ENV_KEYS,
    MLFLOW_KEYS,
    MLFLOW_SECRET,
    S3_KEYS,
    S3_SECRET,
)
from mlstack.pipelines.submit import compile_pipeline
from mlstack.pipelines.training import training_pipeline
from tests.fixtures.cluster import ROOT

PARAMETERS = {"s3_secret": S3_SECRET, "mlflow_secret": MLFLOW_SECRET, "env_config_map": ENV_CONFIG_MAP}


def compiled(pipeline, tmp_path) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all(compile_pipeline(pipeline, tmp_path / "p.yaml").read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def parameter_name(reference: dict) -> str:
    return reference["componentInputParameter"].removeprefix("pipelinechannel--")


def assert_cluster_env(executor: dict) -> None:
    secrets = {
        parameter_name(s["secretNameParameter"]): (
            {m["secretKey"]: m["envVar"] for m in s["keyToEnv"]},
            s["optional"],
        )
        for s in executor["secretAsEnv"]
    }
    assert secrets == {"s3_secret": (S3_KEYS, True), "mlflow_secret": (MLFLOW_KEYS, True)}
    [config_map] = executor["configMapAsEnv"]
    assert parameter_name(config_map["configMapNameParameter"]) == "env_config_map"
    assert {m["configMapKey"]: m["envVar"] for m in config_map["keyToEnv"]} == ENV_KEYS
    assert config_map["optional"] is True


def test_training_steps_that_read_s3_or_mlflow_get_the_cluster_env(tmp_path):
    spec, executors = compiled(training_pipeline, tmp_path)
    # deploy reads the registry (the version's artifact location) and patches the cluster
    assert set(executors) == {
        "exec-ingest-op",
        "exec-evaluate-op",
        "exec-register-op",
        "exec-register-op-2",
        "exec-deploy-canary-op",
    }
    for executor in executors.values():
        assert_cluster_env(executor)
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: defaults[name]["defaultValue"] for name in PARAMETERS} == PARAMETERS


def test_batch_steps_get_the_cluster_env(tmp_path):
    spec, executors = compiled(batch_scoring, tmp_path)
    assert set(executors) == {"exec-resolve-model-op", "exec-score-batch-op"}
    for executor in executors.values():
        assert_cluster_env(executor)
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: defaults[name]["defaultValue"] for name in PARAMETERS} == PARAMETERS


def test_the_default_secret_names_are_the_charts():
    values = yaml.safe_load((ROOT / "helm" / "mlstack" / "values.yaml").read_text())
    assert values["s3"]["secretName"] == S3_SECRET
    assert values["mlflow"]["auth"]["secretName"] == MLFLOW_SECRET
