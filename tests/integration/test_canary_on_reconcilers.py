"""Acceptance: the chart installed with helm, canaries driven with ``kubectl model``, KServe and Knative reconciling.

On the reconciler fixture's control plane (tests/fixtures/reconcilers.py), as on kind after
``make platform``: ``make deploy``'s Secrets step (``kind-secrets.sh``), then ``helm install`` of
helm/mlstack with the kind values (hooks included: kwok completes the bucket Job's pod), then the
pipeline's deploy step creates ``loan-default`` from the chart's template ConfigMap. Then
``kubectl model canary 20 -> promote`` and ``canary 20 -> rollback``; after each step the test reads
the traffic Knative's route reconciler wrote on the Route, the status KServe wrote on the
InferenceService (traffic, latestRolledoutRevision, previousRolledoutRevision) and the pods of each
revision Ready on a kwok node.

Two values differ from ``make deploy``: the ClusterServingRuntime's name and model format. The
runtime is cluster-scoped, and KServe's ClusterServingRuntime webhook refuses a second runtime that
serves the same model format at the same priority ("same priority assigned for the model format
mlstack-sklearn in the clusterservingruntimes ..."), which the other canary tests' namespaces already
have. (The same refusal would stop a second release of this chart on one cluster.)
"""

from __future__ import annotations

import pytest

from mlstack.components.deploy import serve_version
from tests.fixtures.kserve_live import LiveInferenceServices, deploy_secrets
from tests.fixtures.kube_tools import ROOT

NAME = "loan-default"
REV = "loan-default-predictor-{:05d}".format
URI = "s3://mlstack/mlflow-artifacts/1/models/m-{}/artifacts".format


@pytest.fixture(scope="module")
def release(reconcilers):
    namespace = reconcilers.namespace("mlstack-acceptance")
    deploy_secrets(reconcilers.plane, namespace)
    reconcilers.plane.helm(
        "install",
        "mlstack",
        str(ROOT / "helm" / "mlstack"),
        "-n",
        namespace,
        "-f",
        str(ROOT / "helm" / "mlstack" / "values-kind.yaml"),
        "--set",
        "serving.runtime.name=mlstack-sklearn-acceptance",
        "--set",
        "serving.runtime.modelFormat=mlstack-sklearn-acceptance",
        "--timeout",
        "5m",
        timeout=400,
    )
    yield LiveInferenceServices(reconcilers, namespace)
    reconcilers.plane.helm("uninstall", "mlstack", "-n", namespace, "--no-hooks", check=False)
    reconcilers.plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def registry(mlstack_home):
    """A real MLflow registry (SQLite under $MLSTACK_HOME) with loan-default v1..v3."""
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.core.settings import load_settings

    client = mlflow_adapter.from_settings(load_settings()).client
    client.create_registered_model(NAME)
    for version in (1, 2, 3):
        client.create_model_version(NAME, source=URI(version))
    return client


def observed(live: LiveInferenceServices) -> dict:
    """What the controllers wrote, once settled: Route traffic, KServe's status, Ready pods per revision."""
    obj = live.settle(NAME)
    r, ns = live.reconcilers, live.namespace
    status = obj["status"]["components"]["predictor"]
    route = r.route_traffic(ns, NAME)
    return {
        "route": route,
        "isvc traffic": {t["revisionName"]: t["percent"] for t in status["traffic"] if t["percent"]},
        "rolled out": (status.get("latestRolledoutRevision"), status.get("previousRolledoutRevision")),
        "ready pods": {rev: len(r.ready_pods_on_kwok(ns, rev)) for rev in route},
    }


def test_canary_promote_then_canary_rollback_as_kserve_and_knative_do_it(
    release, registry, kubectl_model, tmp_path, monkeypatch
):
    from kserve import KServeClient

    kubeconfig = release.kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # the pipeline's deploy step creates the service from the template ConfigMap helm installed
    client = KServeClient(config_file=str(kubeconfig))
    created = serve_version(
        NAME, release.namespace, "1", URI(1), 10, kserve_client=client, apply_aliases=lambda ops: []
    )
    assert created["move"] == "create"
    assert observed(release) == {
        "route": {REV(1): 100},
        "isvc traffic": {REV(1): 100},
        "rolled out": (REV(1), None),
        "ready pods": {REV(1): 2},
    }
    registry.set_registered_model_alias(NAME, "champion", "1")

    def run(*args: str) -> None:
        code, _, err = kubectl_model(*args, "-n", release.namespace)
        assert code == 0, err

    run("canary", NAME, "--version", "2", "--percent", "20")
    assert observed(release) == {
        "route": {REV(2): 20, REV(1): 80},
        "isvc traffic": {REV(2): 20, REV(1): 80},
        "rolled out": (REV(1), None),
        "ready pods": {REV(2): 2, REV(1): 2},
    }
    run("promote", NAME)
    assert observed(release) == {
        "route": {REV(2): 100},
        "isvc traffic": {REV(2): 100},
        "rolled out": (REV(2), REV(1)),
        "ready pods": {REV(2): 2},
    }

    run("canary", NAME, "--version", "3", "--percent", "20")
    assert observed(release) == {
        "route": {REV(3): 20, REV(2): 80},
        "isvc traffic": {REV(3): 20, REV(2): 80},
        "rolled out": (REV(2), REV(1)),
        "ready pods": {REV(3): 2, REV(2): 2},
    }
    run("rollback", NAME, "--reason", "acceptance")
    # the champion's spec restored is revision 00004 at 0 %; 00002 has all the traffic again
    assert observed(release) == {
        "route": {REV(4): 0, REV(2): 100},
        "isvc traffic": {REV(2): 100},
        "rolled out": (REV(2), REV(1)),
        "ready pods": {REV(4): 2, REV(2): 2},
    }
    assert registry.get_registered_model(NAME).aliases == {"champion": 2, "previous": 1}
