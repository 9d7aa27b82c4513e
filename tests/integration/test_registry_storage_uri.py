"""A version the chart's MLflow registers reaches KServe with no storage URI passed anywhere.

The chart runs MLflow with ``--artifacts-destination`` (``helm/mlstack/templates/mlflow.yaml``), so
the registry answers ``get_model_version_download_uri`` with ``mlflow-artifacts:/...``, a scheme
KServe's storage initializer has no handler for. Everything here is the real part:

- the session's ``mlflow server`` set up as the chart runs it (``tests/fixtures/mlflow_server.py``:
  proxied artifacts, destination = the kind values' ``s3://mlstack/mlflow-artifacts`` on an S3 API);
- the pipeline's own register step (``components/register.py`` ``log_and_register``);
- the chart's rendered ``<model>-isvc-template`` ConfigMap in the real kube-apiserver holding KServe's
  CRD, reconciled by KServe's and Knative's own controllers (``kube_api``), the deploy step
  (``components/deploy.py``) and ``kubectl model canary``;
- KServe's own storage initializer at the pinned tag (``python/storage`` and
  ``python/storage-initializer/scripts/initializer-entrypoint`` of github.com/kserve/kserve v0.20.0,
  read from the Go module), fetching the URI the InferenceService ended up with, with the variables
  KServe's webhook derives from the ``mlstack-s3`` Secret's annotations
  (``pkg/credentials/s3/utils.go`` ``BuildS3EnvVars``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.components.deploy import TEMPLATE_SUFFIX, deploy_step
from mlstack.core import generator
from mlstack.core.model import load
from mlstack.core.settings import TrainingConfig
from tests.fixtures.cluster import named, render_objects, values_file
from tests.fixtures.mlflow_server import S3_CREDENTIALS
from tests.fixtures.registered import register_trained

pytestmark = pytest.mark.timeout(900)

SERVICE = "loan-default"  # the model values-kind.yaml serves


@pytest.fixture
def kserve_client(kube_api):
    from kserve import KServeClient

    return KServeClient(config_file=os.environ["KUBECONFIG"])


def _chart_template(registered_model: str, namespace: str) -> dict:
    """The template ConfigMap `make deploy` installs (kind values), for a registered model of this test."""
    values = values_file("values-kind.yaml")
    values["serving"]["models"][0]["registeredModel"] = registered_model
    config_map = named(render_objects(values), "ConfigMap", SERVICE + TEMPLATE_SUFFIX)
    return {**config_map, "metadata": {**config_map["metadata"], "namespace": namespace}}


def _register(tracking_uri: str, model: str, seed: int) -> str:
    """One pass of the pipeline's register step on fresh data; the version it registered."""
    registry = connect(MlflowAddress(tracking_uri=tracking_uri))
    return register_trained(registry, TrainingConfig(model_name=model), "storage-uri", seed=seed)[0][
        "model_version"
    ]


def _kserve_fetch(server, storage_uri: str, target: Path) -> subprocess.CompletedProcess:
    """KServe v0.20.0's storage initializer, as the predictor pod's init container runs it."""
    from tests.fixtures.upstream import KSERVE, module_dir

    kserve = module_dir(KSERVE) / "python"
    endpoint = server.s3_endpoint.removeprefix("http://")
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(kserve / "storage"),
        **S3_CREDENTIALS,
        # the mlstack-s3 Secret's annotations (manifests/scripts/kind-secrets.sh) as KServe maps them
        "S3_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": server.s3_endpoint,
        "S3_USE_HTTPS": "0",
        "S3_VERIFY_SSL": "0",
    }
    entrypoint = kserve / "storage-initializer" / "scripts" / "initializer-entrypoint"
    return subprocess.run(
        [sys.executable, str(entrypoint), storage_uri, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _served(kube_api) -> str:
    return kube_api.settle(SERVICE)["spec"]["predictor"]["model"]["storageUri"]


def _assert_kserve_serves(server, storage_uri: str, model: str, version: str, target: Path) -> None:
    """KServe's initializer fetches ``storage_uri`` and the result is that version's model."""
    assert storage_uri.startswith(server.artifacts_destination + "/"), storage_uri
    fetched = _kserve_fetch(server, storage_uri, target)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    served = load(str(target), version=version)
    registered = connect(MlflowAddress(tracking_uri=server.url)).load_model(f"{model}/{version}")
    assert served.engine == registered.engine == "onnx"  # the compiled side file came along
    rows = generator.generate(200, seed=99)
    assert (served.predict(rows)[1] == registered.predict(rows)[1]).all()


def test_registered_versions_get_a_uri_kserve_fetches_with_none_passed(
    mlflow_server_info, kube_api, kserve_client, kubectl_model, mlstack_home, monkeypatch, tmp_path
):
    server = mlflow_server_info
    model = f"uri-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLSTACK_TRACKING_URI", server.url)  # what the pipeline step and the plugin read
    namespace = kube_api.namespace
    kube_api.config_maps[(namespace, SERVICE + TEMPLATE_SUFFIX)] = _chart_template(model, namespace)

    first = _register(server.url, model, seed=1)
    # the shape of the problem: the chart's registry hands out the proxied scheme
    assert (
        MlflowClient(server.url).get_model_version_download_uri(model, first).startswith("mlflow-artifacts:/")
    )
    # the tracking URI as the pipeline passes it to the step; the storage URI is not passed
    result = deploy_step(
        True, model, first, SERVICE, namespace, kserve_client=kserve_client, tracking_uri=server.url
    )
    assert result["move"] == "create", result
    _assert_kserve_serves(server, _served(kube_api), model, first, tmp_path / "v1")

    second = _register(server.url, model, seed=2)
    code, _, err = kubectl_model("canary", SERVICE, "--version", second, "--percent", "10")
    assert code == 0, err
    assert kube_api.settle(SERVICE)["spec"]["predictor"]["canaryTrafficPercent"] == 10
    _assert_kserve_serves(server, _served(kube_api), model, second, tmp_path / "v2")


def test_the_chart_gives_the_service_the_destination_it_gives_mlflow(kind_values):
    objects = render_objects(kind_values)
    mlflow = named(objects, "Deployment", "mlstack-mlflow")["spec"]["template"]["spec"]["containers"][0]
    destination = mlflow["args"][mlflow["args"].index("--artifacts-destination") + 1]
    template = yaml.safe_load(
        named(objects, "ConfigMap", SERVICE + TEMPLATE_SUFFIX)["data"]["inferenceservice.yaml"]
    )
    assert template["metadata"]["annotations"]["serving.mlstack.io/artifacts-destination"] == destination
    assert destination == kind_values["mlflow"]["artifactsDestination"]
