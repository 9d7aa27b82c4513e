"""The pipeline's deploy step: the registered version served through the real KServe SDK client.

Against InferenceServices KServe's and Knative's own controllers reconcile (``kube_api``:
tests/fixtures/kserve_live.py): the first deploy creates the InferenceService from the chart's own
rendered template ConfigMap, a later version starts a canary, the served version is a no-op.
"""

from __future__ import annotations

import os

import pytest
import yaml

from mlstack.components.deploy import TEMPLATE_KEY, deploy_step, serve_version
from mlstack.components.image import COMPONENT_IMAGE
from mlstack.components.training_ops import deploy_canary_op
from mlstack.core.errors import CheckFailed
from tests.fixtures.cluster import deep_merge, named, render_objects, values_file


@pytest.fixture
def kserve_client(kube_api):
    from kserve import KServeClient

    return KServeClient(config_file=os.environ["KUBECONFIG"])


def test_start_canary_patches_through_the_kserve_sdk(kube_api, kserve_client):
    ns = kube_api.namespace
    result = serve_version(
        "fraud", ns, "2", "s3://mlflow/1/models/m-2/artifacts", 10, kserve_client=kserve_client
    )
    assert result["champion_version"] == "1" and result["percent"] == 10
    obj = kube_api.settle("fraud")
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert obj["spec"]["predictor"]["model"]["env"] == [{"name": "MLSTACK_MODEL_VERSION", "value": "2"}]
    assert obj["spec"]["predictor"]["minReplicas"] == 2  # the rest of the spec survives the patch
    traffic = {t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]}
    assert traffic == {"fraud-predictor-00002": 10, "fraud-predictor-00001": 90}
    assert kube_api.reconcilers.route_traffic(ns, "fraud") == traffic  # what Knative routes
    with pytest.raises(CheckFailed, match="in flight"):
        serve_version("fraud", ns, "3", "s3://mlflow/1/models/m-3/artifacts", 10, kserve_client=kserve_client)


def test_deploy_step_looks_up_the_version_and_honours_the_switch(kube_api, kserve_client, mlflow_registry):
    ns = kube_api.namespace
    assert deploy_step(False, "fraud", "2", "fraud", ns, kserve_client=kserve_client)["deployed"] is False
    assert [m for m, _, _ in kube_api.requests if m == "PATCH"] == []
    result = deploy_step(True, "fraud", "2", "fraud", ns, kserve_client=kserve_client)
    assert result["deployed"] and result["percent"] == 10  # canary.initial_percent
    obj = kube_api.settle("fraud")
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/models/m-2/artifacts"
    assert obj["status"]["components"]["predictor"]["latestReadyRevision"] == "fraud-predictor-00002"


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

    from mlstack.pipelines.training import training_pipeline

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


def _chart_template(namespace: str) -> dict:
    """The ConfigMap the chart renders with the kind values (what `make deploy` installs)."""
    config_map = named(
        render_objects(values_file("values-kind.yaml")), "ConfigMap", "loan-default-isvc-template"
    )
    return {**config_map, "metadata": {**config_map["metadata"], "namespace": namespace}}


def test_first_deploy_creates_the_service_from_the_chart_template(kube_api, kserve_client):
    ns = kube_api.namespace
    kube_api.config_maps[(ns, "loan-default-isvc-template")] = _chart_template(ns)
    uri = "s3://mlstack/mlflow-artifacts/1/models/m-abc/artifacts"
    moved = []
    result = serve_version(
        "loan-default", ns, "1", uri, 10, kserve_client=kserve_client, apply_aliases=moved.extend
    )
    assert result["move"] == "create" and result["percent"] == 100
    created = kube_api.settle("loan-default")  # KServe and Knative rolled it out
    assert (
        created["status"]["components"]["predictor"]["latestRolledoutRevision"]
        == "loan-default-predictor-00001"
    )
    predictor = created["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == uri
    assert predictor["model"]["env"] == [{"name": "MLSTACK_MODEL_VERSION", "value": "1"}]
    assert "canaryTrafficPercent" not in predictor
    # the rest is the chart's: runtime, service account, logger to the sink
    assert predictor["model"]["runtime"] == "mlstack-sklearn"
    assert predictor["serviceAccountName"].endswith("-predictor")
    assert predictor["logger"]["url"].startswith("http://")
    assert [op.describe() for op in moved] == ["alias champion -> loan-default v1"]
    # the same version again: nothing sent
    posts = [r for r in kube_api.requests if r[0] in ("POST", "PATCH")]
    again = serve_version("loan-default", ns, "1", uri, 10, kserve_client=kserve_client)
    assert again["move"] == "noop" and not again["deployed"]
    assert [r for r in kube_api.requests if r[0] in ("POST", "PATCH")] == posts
    # the next version: a canary next to it
    nxt = serve_version("loan-default", ns, "2", uri.replace("abc", "def"), 10, kserve_client=kserve_client)
    assert nxt["move"] == "start" and nxt["champion_version"] == "1"
    assert kube_api.settle("loan-default")["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert kube_api.reconcilers.route_traffic(ns, "loan-default") == {
        "loan-default-predictor-00002": 10,
        "loan-default-predictor-00001": 90,
    }


def test_a_template_kserves_webhook_refuses_fails_the_step_in_one_line(kube_api, kserve_client):
    """minReplicas above maxReplicas passes the chart's schema; KServe's validating webhook refuses it."""
    ns = kube_api.namespace
    values = deep_merge(
        values_file("values-kind.yaml"),
        {"serving": {"models": [{"name": "loan-default", "minReplicas": 4, "maxReplicas": 2}]}},
    )
    config_map = named(render_objects(values), "ConfigMap", "loan-default-isvc-template")
    kube_api.config_maps[(ns, "loan-default-isvc-template")] = config_map
    with pytest.raises(CheckFailed) as refused:
        serve_version("loan-default", ns, "1", "s3://mlstack/x", 10, kserve_client=kserve_client)
    assert str(refused.value) == (
        f"the API refused create of {ns}/loan-default: admission webhook "
        '"inferenceservice.kserve-webhook-server.validator" denied the request: '
        "'MinReplicas' cannot be greater than MaxReplicas"
    )


def test_first_deploy_without_the_chart_template_fails_saying_why(kube_api, kserve_client):
    with pytest.raises(CheckFailed, match="isvc-template"):
        serve_version(
            "loan-default", kube_api.namespace, "1", "s3://mlstack/x", 10, kserve_client=kserve_client
        )
    # nothing created for loan-default (the fixture's own seeding of other services is in the log too)
    created = [
        r
        for r in kube_api.requests
        if r[0] == "POST" and (r[2] or {}).get("metadata", {}).get("name") == "loan-default"
    ]
    assert not created


def test_the_template_is_a_valid_inference_service_once_filled():
    from mlstack.core import rollout
    from tests.fixtures.kserve_schema import validate_isvc

    template = yaml.safe_load(_chart_template("models")["data"][TEMPLATE_KEY])
    assert template["spec"]["predictor"]["model"]["storageUri"] == ""
    obj = rollout.first_deploy(template, "3", "s3://mlstack/mlflow-artifacts/1/models/m-3/artifacts")
    assert not validate_isvc(obj)
    assert rollout.state_of(obj).phase == "stable" and rollout.state_of(obj).serving_version == "3"
