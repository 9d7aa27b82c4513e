"""The pipeline's deploy step: a canary started through the real KServe SDK client against the loopback API."""

from __future__ import annotations

import os

import pytest
import yaml

from components.deploy import deploy_step, start_canary
from components.deploy_op import deploy_canary_op
from components.image import COMPONENT_IMAGE
from mlstack.core.errors import CheckFailed


@pytest.fixture
def kserve_client(kube_api):
    from kserve import KServeClient

    return KServeClient(config_file=os.environ["KUBECONFIG"])


def test_start_canary_patches_through_the_kserve_sdk(kube_api, kserve_client):
    result = start_canary(
        "fraud", "models", "2", "s3://mlflow/1/models/m-2/artifacts", 10, kserve_client=kserve_client
    )
    assert result["champion_version"] == "1" and result["percent"] == 10
    obj = kube_api.objects[("models", "fraud")]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert obj["spec"]["predictor"]["model"]["env"] == [{"name": "MLSTACK_MODEL_VERSION", "value": "2"}]
    assert obj["spec"]["predictor"]["minReplicas"] == 2  # the rest of the spec survives the patch
    traffic = {t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]}
    assert traffic == {"fraud-predictor-00002": 10, "fraud-predictor-00001": 90}
    with pytest.raises(CheckFailed, match="in flight"):
        start_canary(
            "fraud", "models", "3", "s3://mlflow/1/models/m-3/artifacts", 10, kserve_client=kserve_client
        )


def test_deploy_step_looks_up_the_version_and_honours_the_switch(kube_api, kserve_client, mlflow_registry):
    assert (
        deploy_step(False, "fraud", "2", "fraud", "models", kserve_client=kserve_client)["deployed"] is False
    )
    assert [m for m, _, _ in kube_api.requests if m == "PATCH"] == []
    result = deploy_step(True, "fraud", "2", "fraud", "models", kserve_client=kserve_client)
    assert result["deployed"] and result["percent"] == 10  # canary.initial_percent
    assert kube_api.objects[("models", "fraud")]["spec"]["predictor"]["model"]["storageUri"] == (
        "s3://mlflow/1/models/m-2/artifacts"
    )


def test_component_compiles_to_our_image_without_installing_kfp(tmp_path):
    from kfp import compiler

    path = tmp_path / "deploy.yaml"
    compiler.Compiler().compile(deploy_canary_op, str(path))
    spec = yaml.safe_load(path.read_text())
    container = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    assert container["image"] == COMPONENT_IMAGE
    assert "pip install" not in " ".join(container["command"])
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {
        "deploy",
        "register_result",
        "inference_service",
    }


def test_training_pipeline_deploys_only_behind_the_gate_and_the_switch(tmp_path):
    from kfp import compiler

    from pipelines.training import training_pipeline

    path = tmp_path / "training.yaml"
    compiler.Compiler().compile(training_pipeline, str(path))
    spec = next(yaml.safe_load_all(path.read_text()))  # then the Kubernetes platform spec
    tasks = {
        name: task
        for comp in spec["components"].values()
        for name, task in (comp.get("dag") or {}).get("tasks", {}).items()
    }
    deploy_branch = next(t for t in tasks.values() if t.get("taskInfo", {}).get("name") == "deploy-enabled")
    assert (
        deploy_branch["triggerPolicy"]["condition"]
        == "inputs.parameter_values['pipelinechannel--deploy'] == true"
    )
    gate_branch = next(t for t in tasks.values() if t.get("taskInfo", {}).get("name") == "gate-passed")
    inner = spec["components"][gate_branch["componentRef"]["name"]]["dag"]["tasks"]
    assert any(t.get("taskInfo", {}).get("name") == "deploy-enabled" for t in inner.values())
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy"]["defaultValue"] is False
