"""Broken objects are refused by the real API server, not by our code.

Each request goes straight to kube-apiserver over HTTPS (httpx with the admin client cert, or
kubectl impersonating a ServiceAccount), and each assertion reads the server's own answer: the
status code and the message of the ``Status`` object it returns.
"""

from __future__ import annotations

import copy

import httpx
import pytest
import yaml

from tests.fixtures.kserve_live import chart_isvc
from tests.fixtures.kube_tools import ROOT


@pytest.fixture(scope="module")
def api(control_plane):
    with httpx.Client(
        base_url=control_plane.server,
        verify=control_plane.admin_tls(),
        params={"fieldValidation": "Strict"},
        timeout=30,
    ) as client:
        yield client


def chart_deployment(control_plane, namespace: str) -> dict:
    """The chart's MLflow Deployment as `helm template` renders it."""
    text = control_plane.helm(
        "template",
        "mlstack",
        str(ROOT / "helm" / "mlstack"),
        "-n",
        namespace,
        "--show-only",
        "templates/mlflow.yaml",
    ).stdout
    deployment = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")
    # the chart's ServiceAccount is not in this test's namespace: use the one every namespace has
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    return deployment


def test_an_unknown_field_is_refused(api, control_plane, namespace):
    deployment = chart_deployment(control_plane, namespace)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    response = api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment)
    assert response.status_code == 400, response.text
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in response.json()["message"]


def test_an_unknown_inferenceservice_field_is_refused_by_kserves_crd(api, kserve_crds, namespace):
    isvc = chart_isvc("fraud", namespace, "1", "s3://mlflow/1/models/m-1/artifacts")
    isvc["spec"]["predictor"]["model"]["storageUrl"] = isvc["spec"]["predictor"]["model"].pop("storageUri")
    response = api.post(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices", json=isvc
    )
    assert response.status_code == 400, response.text
    assert 'unknown field "spec.predictor.model.storageUrl"' in response.json()["message"]


def test_a_wrongly_typed_inferenceservice_field_is_refused(api, kserve_crds, namespace):
    isvc = chart_isvc("fraud", namespace, "1", "s3://mlflow/1/models/m-1/artifacts")
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    response = api.post(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices", json=isvc
    )
    assert response.status_code == 422, response.text
    assert "spec.predictor.minReplicas" in response.json()["message"]


def test_an_object_in_a_missing_namespace_is_refused(api):
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "nope"}}
    response = api.post("/api/v1/namespaces/nope/configmaps", json=config_map)
    assert response.status_code == 404, response.text
    assert response.json()["message"] == 'namespaces "nope" not found'


def test_a_privileged_pod_is_refused_by_pod_security(api, control_plane, namespace):
    template = chart_deployment(control_plane, namespace)["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": copy.deepcopy(template["spec"]),
    }
    # a valid object (privileged implies escalation: the API's own validation insists), so it is
    # Pod Security, a validating admission plugin, that refuses it
    pod["spec"]["containers"][0]["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    response = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert 'violates PodSecurity "restricted:latest"' in message and "privileged" in message
    # the same pod unmodified is admitted (so it is the privilege that was refused)
    pod["spec"]["containers"][0]["securityContext"].update(privileged=False, allowPrivilegeEscalation=False)
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201


def test_pods_a_controller_makes_are_judged_too(control_plane, namespace):
    """A Deployment without our securityContext is stored, but Pod Security refuses its pods."""
    deployment = chart_deployment(control_plane, namespace)
    deployment["metadata"]["name"] = "unhardened"
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        container.pop("securityContext", None)
    deployment["spec"]["template"]["spec"].pop("securityContext", None)
    control_plane.apply(deployment, "-n", namespace)

    def replica_failure() -> str:
        for rs in control_plane.get("replicasets", "-n", namespace)["items"]:
            if rs["metadata"]["ownerReferences"][0]["name"] != "unhardened":
                continue
            for condition in rs["status"].get("conditions", []):
                if condition["type"] == "ReplicaFailure":
                    return condition["message"]
        return ""

    from tests.integration.test_chart_install import wait_for

    assert wait_for(replica_failure, timeout=60)
    assert "violates PodSecurity" in replica_failure()
    pods = control_plane.get("pods", "-n", namespace, "-l", "app.kubernetes.io/component=mlflow")["items"]
    assert [p for p in pods if p["metadata"]["ownerReferences"][0]["name"].startswith("unhardened")] == []


def test_a_wildcard_role_beyond_what_its_author_holds_is_refused(control_plane, namespace):
    """RBAC escalation prevention: an account that holds get/patch cannot grant '*' on the same resource."""
    rules = [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get", "patch"]}
    ]
    author_rules = rules + [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "get"]}
    ]
    control_plane.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "author", "namespace": namespace},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "author", "namespace": namespace},
                "rules": author_rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "author", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "author"},
                "subjects": [{"kind": "ServiceAccount", "name": "author", "namespace": namespace}],
            },
        ]
    )

    def create_role(name: str, verbs: list[str]):
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [{**rules[0], "verbs": verbs}],
        }
        return control_plane.kubectl(
            "create",
            "-f",
            "-",
            f"--as=system:serviceaccount:{namespace}:author",
            input=yaml.safe_dump(role),
            check=False,
        )

    wildcard = create_role("wildcard", ["*"])
    assert wildcard.returncode != 0
    assert "is attempting to grant RBAC permissions not currently held" in wildcard.stderr
    assert create_role("narrow", ["get", "patch"]).returncode == 0
