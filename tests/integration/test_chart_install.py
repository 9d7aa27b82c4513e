"""The chart installed for real: `helm install` of helm/mlstack into a Pod Security "restricted" namespace.

The API server (tests/fixtures/control_plane.py) holds the platform's CRDs at the pinned versions
(KServe's, the prometheus-operator's: the `platform` fixture), so every object of the chart is
validated by the server's own schemas with strict field validation, admitted by Pod Security, and
the pods kube-controller-manager makes from our Deployments, StatefulSets and Jobs are judged by Pod
Security too. RBAC answers come from the server (SelfSubjectAccessReview with a real
ServiceAccount token, and `kubectl auth can-i --as`).

Helm hooks: the kind values add a pre-install/pre-upgrade Job (the S3 bucket). Helm waits for a hook
Job to finish, and with no nodes none ever does, so install and upgrade run with --no-hooks and the
hook Job is created on its own (test_the_hook_job_is_admitted_and_makes_its_pod).
"""

from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.fixtures.kube_tools import ROOT

CHART = ROOT / "helm" / "mlstack"
VALUES = {"default": [], "kind": ["-f", str(CHART / "values-kind.yaml")]}
RELEASE = "mlstack"
WORKLOADS = ("Deployment", "StatefulSet")


def wait_for(check, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def restricted_namespace(plane, name: str) -> str:
    plane.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", timeout=300)
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    return name


def manifest_objects(plane, namespace: str) -> list[dict]:
    text = plane.helm("get", "manifest", RELEASE, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module", params=list(VALUES))
def release(request, platform, control_plane):
    """The chart installed with default or kind values in its own restricted namespace."""
    namespace = restricted_namespace(control_plane, f"chart-{request.param}")
    control_plane.helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        "--no-hooks",
        "--timeout",
        "2m",
        *VALUES[request.param],
    )
    yield request.param, namespace
    control_plane.helm("uninstall", RELEASE, "-n", namespace, "--no-hooks", check=False)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_every_object_is_stored_by_the_server(release, control_plane):
    _, namespace = release
    objects = manifest_objects(control_plane, namespace)
    assert len(objects) >= 30
    for obj in objects:
        name = obj["metadata"]["name"]
        scope = [] if obj["kind"] == "ClusterServingRuntime" else ["-n", namespace]
        group, _, version = obj["apiVersion"].rpartition("/")
        # kubectl's KIND.VERSION.GROUP; the core group ("v1") has no group part
        resource = f"{obj['kind']}.{version}.{group}" if group else obj["kind"]
        stored = control_plane.get(*scope, resource, name)
        assert stored["metadata"]["name"] == name
        # a CRD prunes fields its schema does not declare: every field we sent must still be there
        assert missing_fields(obj.get("spec"), stored.get("spec")) == [], f"{obj['kind']}/{name}"


def missing_fields(sent, stored, path: str = "spec") -> list[str]:
    """Paths present in ``sent`` but absent from ``stored`` (the server may add defaults, not drop).

    An empty list or map is the same as none to the API (Go's ``omitempty``: a NetworkPolicy's
    ``egress: []`` under ``policyTypes: [Egress]`` is stored without the key and still denies all).
    """
    if sent in ([], {}) and stored is None:
        return []
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [
            m for key, value in sent.items() for m in missing_fields(value, stored.get(key), f"{path}.{key}")
        ]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [
            m
            for i, (a, b) in enumerate(zip(sent, stored, strict=True))
            for m in missing_fields(a, b, f"{path}[{i}]")
        ]
    return [] if stored is not None or sent is None else [path]


def test_the_controllers_pods_are_admitted_by_pod_security(release, control_plane):
    """Every Deployment and StatefulSet gets its pods created in the restricted namespace."""
    _, namespace = release
    workloads = [o for o in manifest_objects(control_plane, namespace) if o["kind"] in WORKLOADS]
    assert workloads

    def all_have_pods() -> bool:
        pods = control_plane.get("pods", "-n", namespace)["items"]
        owners = {ref["name"] for p in pods for ref in p["metadata"].get("ownerReferences", [])}
        sets = control_plane.get("replicasets", "-n", namespace)["items"]
        owners |= {
            ref["name"]
            for rs in sets
            if rs["status"].get("replicas")
            for ref in rs["metadata"]["ownerReferences"]
        }
        return all(w["metadata"]["name"] in owners for w in workloads)

    assert wait_for(all_have_pods), "some workloads have no pods"
    events = control_plane.get("events", "-n", namespace)["items"]
    refused = [e["message"] for e in events if "PodSecurity" in e.get("message", "")]
    assert refused == []
    for rs in control_plane.get("replicasets", "-n", namespace)["items"]:
        failures = [c for c in rs["status"].get("conditions", []) if c["type"] == "ReplicaFailure"]
        assert not failures, failures


def test_cronjob_pods_are_admitted(release, control_plane):
    _, namespace = release
    cronjobs = [
        o["metadata"]["name"] for o in manifest_objects(control_plane, namespace) if o["kind"] == "CronJob"
    ]
    assert cronjobs
    for name in cronjobs:
        control_plane.kubectl("-n", namespace, "create", "job", f"{name[:40]}-now", f"--from=cronjob/{name}")

    def pods_for_every_job() -> bool:
        pods = control_plane.get("pods", "-n", namespace)["items"]
        jobs = {p["metadata"].get("labels", {}).get("job-name") for p in pods}
        return all(f"{name[:40]}-now" in jobs for name in cronjobs)

    assert wait_for(pods_for_every_job), "a CronJob's Job made no pod"


def test_the_hook_job_is_admitted_and_makes_its_pod(release, control_plane):
    values, namespace = release
    if values != "kind":
        pytest.skip("the S3 bucket hook Job exists only with the kind values")
    rendered = control_plane.helm(
        "template",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        *VALUES["kind"],
        "--show-only",
        "templates/s3-bucket-job.yaml",
    ).stdout
    control_plane.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=rendered)
    name = yaml.safe_load(rendered)["metadata"]["name"]
    assert wait_for(lambda: control_plane.get("pods", "-n", namespace, "-l", f"job-name={name}")["items"]), (
        "the hook Job made no pod"
    )


# ------------------------------------------------------------------ RBAC: the server's answers


def can_i(
    plane, service_account: str, namespace: str, verb: str, resource: str, where: str | None = None
) -> bool:
    proc = plane.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        where or namespace,
        f"--as=system:serviceaccount:{namespace}:{service_account}",
        check=False,
    )
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def test_canary_analysis_may_get_and_patch_inferenceservices_only_in_its_namespace(release, control_plane):
    values, namespace = release
    if values != "kind":
        pytest.skip("canary analysis is enabled by the kind values only")
    sa, isvc = "mlstack-canary-analysis", "inferenceservices.serving.kserve.io"
    assert can_i(control_plane, sa, namespace, "get", isvc)
    assert can_i(control_plane, sa, namespace, "patch", isvc)
    assert not can_i(control_plane, sa, namespace, "delete", isvc)
    assert not can_i(control_plane, sa, namespace, "list", isvc)
    assert not can_i(control_plane, sa, namespace, "create", isvc)
    assert not can_i(control_plane, sa, namespace, "get", isvc, where="default")
    assert not can_i(control_plane, sa, namespace, "patch", isvc, where="kserve")
    assert not can_i(control_plane, sa, namespace, "get", "secrets")


def test_a_real_canary_analysis_token_gets_the_same_answers(release, control_plane):
    """A TokenRequest token, signed by the API server, asks the server itself (SelfSubjectAccessReview)."""
    values, namespace = release
    if values != "kind":
        pytest.skip("canary analysis is enabled by the kind values only")
    token = control_plane.token(namespace, "mlstack-canary-analysis")
    client = httpx.Client(
        base_url=control_plane.server,
        verify=str(control_plane.pki.ca_cert),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    def allowed(verb: str, where: str) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": "serving.kserve.io",
                    "resource": "inferenceservices",
                    "verb": verb,
                    "namespace": where,
                }
            },
        }
        response = client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
        assert response.status_code == 201, response.text
        return response.json()["status"]["allowed"]

    whoami = client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    ).json()
    assert (
        whoami["status"]["userInfo"]["username"]
        == f"system:serviceaccount:{namespace}:mlstack-canary-analysis"
    )
    assert allowed("get", namespace) and allowed("patch", namespace)
    assert not allowed("delete", namespace) and not allowed("get", "default")
    # and the token really reads and patches an InferenceService of its namespace, nothing else
    # the kind values serve nothing until the pipeline's deploy step creates the service from the
    # chart's template ConfigMap; create it the same way (as admin) so the token has one to read
    templates = [
        o
        for o in manifest_objects(control_plane, namespace)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-isvc-template")
    ]
    assert templates, "the chart renders an InferenceService template per model"
    isvc = yaml.safe_load(next(iter(templates[0]["data"].values())))
    isvc["metadata"]["namespace"] = namespace
    isvc["spec"]["predictor"]["model"]["storageUri"] = "s3://mlflow/1/models/m-1/artifacts"
    control_plane.apply(isvc)
    path = (
        f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{isvc['metadata']['name']}"
    )
    assert client.get(path).status_code == 200
    assert client.delete(path).status_code == 403
    assert client.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403


def test_no_other_workload_account_can_touch_the_api(release, control_plane):
    _, namespace = release
    accounts = [
        o["metadata"]["name"]
        for o in manifest_objects(control_plane, namespace)
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] != "mlstack-canary-analysis"
    ]
    assert len(accounts) >= 6
    for sa in accounts:
        for verb, resource in (
            ("get", "inferenceservices.serving.kserve.io"),
            ("patch", "inferenceservices.serving.kserve.io"),
            ("get", "secrets"),
            ("list", "pods"),
            ("create", "pods"),
            ("get", "configmaps"),
        ):
            assert not can_i(control_plane, sa, namespace, verb, resource), f"{sa} may {verb} {resource}"
