"""The chart with the rollout controller on, installed for real, and the controller run as the chart runs it.

``helm install`` (kind values + ``rolloutController.enabled``) into a Pod Security "restricted"
namespace of the session's kube-apiserver: Pod Security admits the controller's pods and RBAC
answers come from the server. Then, on the control plane where KServe's and Knative's own
controllers reconcile (tests/fixtures/reconcilers.py), the chart's ServiceAccount, Role and
RoleBinding for the controller are applied as rendered and ``mlstack rollout controller`` runs with
the environment the rendered Deployment sets and that ServiceAccount's token, so least RBAC is proven
sufficient by the server refusing anything more, and the move passes KServe's webhooks and is split
into traffic by KServe and Knative. Only the addresses differ: MLflow is the session's server on
loopback, and the webhook URL (a cluster DNS name) is left out, so the resync does the work.
"""

from __future__ import annotations

import time
import uuid

import pytest
import yaml

from tests.fixtures.kube_tools import ROOT
from tests.fixtures.rollouts import REPORTING_CONTROLLER, SECRET, ControllerProcess, events_of
from tests.integration.test_chart_install import can_i, restricted_namespace, wait_for

CHART = ROOT / "helm" / "mlstack"
RELEASE = "mlstack"
SA = "mlstack-rollout-controller"
ISVC = "loan-default"


@pytest.fixture(scope="module")
def release(platform, control_plane, tmp_path_factory):
    namespace = restricted_namespace(control_plane, "chart-rollouts")
    model = f"chart-rollouts-{uuid.uuid4().hex[:8]}"
    values = yaml.safe_load((CHART / "values-kind.yaml").read_text())
    values["rolloutController"] = {"enabled": True}
    values["serving"]["models"][0]["registeredModel"] = model
    path = tmp_path_factory.mktemp("chart-rollouts") / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    control_plane.helm("install", RELEASE, str(CHART), "-n", namespace, "--no-hooks", "-f", str(path))
    manifest = control_plane.helm("get", "manifest", RELEASE, "-n", namespace).stdout
    yield namespace, model, [d for d in yaml.safe_load_all(manifest) if d]
    control_plane.helm("uninstall", RELEASE, "-n", namespace, "--no-hooks", check=False)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_controller_pods_are_admitted_by_pod_security(release, control_plane):
    namespace, _, _ = release

    def controller_pods():
        return control_plane.get(
            "pods", "-n", namespace, "-l", "app.kubernetes.io/component=rollout-controller"
        )["items"]

    assert wait_for(controller_pods), "the rollout controller's Deployment made no pod"
    refused = [
        e["message"]
        for e in control_plane.get("events", "-n", namespace)["items"]
        if "PodSecurity" in e.get("message", "")
    ]
    assert refused == []


def test_rbac_answers_its_models_its_lease_and_events_only(release, control_plane):
    namespace, _, _ = release
    isvc = "inferenceservices.serving.kserve.io"
    allowed = [
        ("get", f"{isvc}/{ISVC}"),
        ("patch", f"{isvc}/{ISVC}"),
        ("get", "leases.coordination.k8s.io/mlstack-rollout-controller"),
        ("update", "leases.coordination.k8s.io/mlstack-rollout-controller"),
        ("create", "leases.coordination.k8s.io"),
        ("create", "events.events.k8s.io"),
    ]
    refused = [
        ("patch", f"{isvc}/another-model"),
        ("list", isvc),
        ("create", isvc),
        ("delete", f"{isvc}/{ISVC}"),
        ("update", "leases.coordination.k8s.io/kube-scheduler"),
        ("get", "secrets"),
        ("list", "events.events.k8s.io"),
    ]
    for verb, resource in allowed:
        assert can_i(control_plane, SA, namespace, verb, resource), f"may not {verb} {resource}"
    for verb, resource in refused:
        assert not can_i(control_plane, SA, namespace, verb, resource), f"may {verb} {resource}"
    assert not can_i(control_plane, SA, namespace, "get", f"{isvc}/{ISVC}", where="default")


def test_the_controller_moves_traffic_with_the_charts_environment_and_token(
    release, reconcilers, mlflow_server, tmp_path
):
    """On the reconciler fixture's control plane: the chart's RBAC, KServe's webhooks and status."""
    from mlflow import MlflowClient

    from mlstack.core import rollout
    from tests.fixtures.kserve_live import LiveInferenceServices

    namespace, model, objects = release
    # KServe and Knative reconcile on their own control plane: the chart's ServiceAccount, Role and
    # RoleBinding for the controller go there, as rendered, in a namespace of the release's name
    plane = reconcilers.plane
    reconcilers.namespace(namespace)
    rbac = [
        o
        for o in objects
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding") and o["metadata"]["name"] == SA
    ]
    plane.apply(rbac, "-n", namespace)  # helm sets the namespace at install, not in the manifest
    live = LiveInferenceServices(reconcilers, namespace)
    live.install_model(ISVC)
    # the service the pipeline's first deploy would create from the chart's template, serving v1
    template = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{ISVC}-isvc-template"
    )
    template = yaml.safe_load(template["data"]["inferenceservice.yaml"])
    # the chart's MLflow hands out proxied locations; the template's artifacts-destination annotation
    # says where KServe finds their bytes
    destination = template["metadata"]["annotations"]["serving.mlstack.io/artifacts-destination"]
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = client.create_run("0").info
    path = run.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    isvc = rollout.first_deploy(template, "1", f"{destination}/{path}/model-1")
    isvc["metadata"]["namespace"] = namespace
    client.create_registered_model(model)
    for version in (1, 2):
        client.log_text(run.run_id, f"version {version}", f"model-{version}/MLmodel")
        client.create_model_version(model, source=f"{run.artifact_uri}/model-{version}", run_id=run.run_id)
    client.set_registered_model_alias(model, "champion", "1")
    try:
        live.create(isvc)
        # the Deployment's own environment, with the two addresses this machine has instead
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == SA)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["mlstack", "rollout", "controller"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        del env["MLSTACK_ROLLOUT__WEBHOOK_URL"]
        env.update(
            MLSTACK_TRACKING_URI=mlflow_server,
            MLSTACK_HOME=str(tmp_path / "home"),
            HOME=str(tmp_path),
            MLSTACK_ROLLOUT__WEBHOOK_SECRET=SECRET,
            MLSTACK_ROLLOUT__HOST="127.0.0.1",
            MLSTACK_ROLLOUT__RESYNC_SECONDS="2",
            MLSTACK_ROLLOUT__GRACE_SECONDS="1",
            PATH="/usr/bin:/bin",
        )
        kubeconfig = tmp_path / "token.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "c",
                            "cluster": {
                                "server": plane.server,
                                "certificate-authority": str(plane.pki.ca_cert),
                            },
                        }
                    ],
                    "users": [{"name": SA, "user": {"token": plane.token(namespace, SA)}}],
                    "contexts": [
                        {"name": "c", "context": {"cluster": "c", "user": SA, "namespace": namespace}}
                    ],
                    "current-context": "c",
                }
            )
        )
        env["KUBECONFIG"] = str(kubeconfig)
        controller = ControllerProcess(env=env, log_path=tmp_path / "controller.log", identity="chart-pod-0")
        controller.start()
        try:
            controller.wait_leading()
            client.set_registered_model_alias(model, "challenger", "2")
            deadline = time.monotonic() + 60
            while True:
                spec = live.get(ISVC)["spec"]["predictor"]
                if spec.get("canaryTrafficPercent") == 10:
                    break
                assert time.monotonic() < deadline, controller.log_tail()
                time.sleep(0.2)
            assert spec["model"]["storageUri"] == f"{destination}/{path}/model-2"
            # KServe split the traffic as the move asked, and Knative's Route carries it
            traffic = live.settle(ISVC)["status"]["components"]["predictor"]["traffic"]
            assert {t["revisionName"]: t["percent"] for t in traffic} == {
                f"{ISVC}-predictor-00001": 90,
                f"{ISVC}-predictor-00002": 10,
            }
            assert reconcilers.route_traffic(namespace, ISVC) == {
                f"{ISVC}-predictor-00001": 90,
                f"{ISVC}-predictor-00002": 10,
            }
            # KServe records its own Events on the service too (InferenceServiceReady, InternalError
            # on a write conflict): the controller's are the ones it reports as itself
            events = events_of(plane, namespace, ISVC)
            print(
                "\nEvents on the service:",
                [(e.get("reportingController"), e["reason"], e.get("note")) for e in events],
            )
            mine = [e["reason"] for e in events if e.get("reportingController") == REPORTING_CONTROLLER]
            assert mine == ["CanaryStarted"]
            assert "not allowed" not in controller.log_tail(200)
            lease = plane.get("-n", namespace, "lease", "mlstack-rollout-controller")
            assert lease["spec"]["holderIdentity"] == "chart-pod-0"
            assert lease["metadata"]["annotations"]["serving.mlstack.io/managed-inference-services"] == ISVC
        finally:
            controller.stop()
    finally:
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
