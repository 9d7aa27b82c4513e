"""No NetworkPolicy in any namespace the platform installs blocks a connection the chart's workloads need.

The policies are the upstream ones (KFP's SeaweedFS policy read from kubeflow/pipelines at KFP_VERSION,
via ``MLSTACK_KFP_SOURCE``; cert-manager, Knative, Kourier and KServe from their Go modules) plus the
chart's own, evaluated with the NetworkPolicy semantics of networking.k8s.io/v1 (a pod selected by
no policy of a direction is open in it; otherwise some rule of a selecting policy must admit the
peer and port). Namespace labels come from the Namespace objects the steps apply plus the
``kubernetes.io/metadata.name`` label the API server adds. Without the
``part-of: kubeflow-profile`` label every S3 connection from ``mlstack`` fails here.
"""

from __future__ import annotations

import pytest

from tests.fixtures.cluster import NAMESPACE
from tests.fixtures.platform import all_loaded

# renders and builds the whole platform (Go modules, kustomize): minutes on a loaded machine
pytestmark = [pytest.mark.unit, pytest.mark.timeout(1800)]


def matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector against labels ({} selects everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_admits(peer: dict, peer_ns: str, peer_labels: dict, policy_ns: str, ns_labels: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pod-to-pod traffic in the cluster is judged by selectors, not CIDRs
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], ns_labels.get(peer_ns, {})):
            return False
    elif peer_ns != policy_ns:
        return False
    return "podSelector" not in peer or matches(peer["podSelector"], peer_labels)


def port_admits(ports: list | None, port: int, name: str) -> bool:
    return not ports or any(p.get("port") in (None, port, name) for p in ports)


def allowed(policies, ns_labels, src, dst, port: int, port_name: str = "") -> str | None:
    """None when the connection src -> dst:port is allowed, else which side drops it."""
    (src_ns, src_labels), (dst_ns, dst_labels) = src, dst
    for direction, own_ns, own, other_ns, other, key, peers_key in (
        ("Egress", src_ns, src_labels, dst_ns, dst_labels, "egress", "to"),
        ("Ingress", dst_ns, dst_labels, src_ns, src_labels, "ingress", "from"),
    ):
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == own_ns
            and direction in (p["spec"].get("policyTypes") or ["Ingress"])
            and matches(p["spec"].get("podSelector"), own)
        ]
        if not selecting:
            continue
        if not any(
            port_admits(rule.get("ports"), port, port_name)
            and (
                not rule.get(peers_key)
                or any(peer_admits(peer, other_ns, other, own_ns, ns_labels) for peer in rule[peers_key])
            )
            for p in selecting
            for rule in p["spec"].get(key) or []
        ):
            return f"{direction} of {own_ns}: {[p['metadata']['name'] for p in selecting]}"
    return None


def pod_labels(obj: dict) -> dict[str, str]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]


def env_names(obj: dict) -> set[str]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    return {
        e["name"] for c in pod.get("containers", []) + pod.get("initContainers", []) for e in c.get("env", [])
    }


@pytest.fixture(scope="module")
def world():
    """(policies, namespace labels, all applied objects) of the whole platform + chart."""
    loaded, missing = all_loaded()
    objects = [dict(o, _default_ns=step.default_namespace) for step in loaded for o in step.objects]
    if any(m.startswith("kubeflow-pipelines") for m in missing):
        pytest.skip(f"KFP's policies are needed and not available: {missing}")
    ns_labels: dict[str, dict] = {}
    for o in objects:
        if o["kind"] == "Namespace":
            name = o["metadata"]["name"]
            ns_labels.setdefault(name, {}).update(o["metadata"].get("labels") or {})
            ns_labels[name]["kubernetes.io/metadata.name"] = name
    policies = []
    for o in objects:
        if o["kind"] == "NetworkPolicy":
            o["metadata"].setdefault("namespace", o["_default_ns"])
            policies.append(o)
    return policies, ns_labels, objects


def chart_workloads(objects):
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob") and o["_default_ns"] == NAMESPACE:
            yield o


def _seaweedfs(objects):
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "seaweedfs"
    )
    return deployment["metadata"]["namespace"], pod_labels(deployment)


def _predictor(name="loan-default"):
    return NAMESPACE, {"serving.kserve.io/inferenceservice": name, "component": "predictor"}


def needed(objects):
    """(what, source, destination, port) for every connection the chart's workloads need."""
    s3 = _seaweedfs(objects)
    by_component = {pod_labels(o).get("app.kubernetes.io/component"): o for o in chart_workloads(objects)}
    yield "predictor storage-initializer -> S3", _predictor(), s3, 8333
    for o in chart_workloads(objects):
        labels = pod_labels(o)
        if "AWS_ENDPOINT_URL_S3" in env_names(o):
            yield f"{o['metadata']['name']} -> S3", (NAMESPACE, labels), s3, 8333
        if "MLSTACK_TRACKING_URI" in env_names(o):
            yield (
                f"{o['metadata']['name']} -> MLflow",
                (NAMESPACE, labels),
                (NAMESPACE, pod_labels(by_component["mlflow"])),
                5000,
            )
    pipeline_pod = ("kubeflow", {"workflows.argoproj.io/workflow": "training-abc"})
    yield "pipeline step -> MLflow", pipeline_pod, (NAMESPACE, pod_labels(by_component["mlflow"])), 5000
    yield "pipeline step -> S3", pipeline_pod, s3, 8333
    yield "predictor -> sink", _predictor(), (NAMESPACE, pod_labels(by_component["sink"])), 8090
    if "drift" in by_component and "pushgateway" in by_component:
        yield (
            "drift -> Pushgateway",
            (NAMESPACE, pod_labels(by_component["drift"])),
            (NAMESPACE, pod_labels(by_component["pushgateway"])),
            9091,
        )
    prometheus = ("monitoring", {"app.kubernetes.io/name": "prometheus", "prometheus": "kps-prometheus"})
    yield "Prometheus -> sink scrape", prometheus, (NAMESPACE, pod_labels(by_component["sink"])), 8090
    yield "Prometheus -> predictor scrape", prometheus, _predictor(), 8080
    if "pushgateway" in by_component:
        yield (
            "Prometheus -> Pushgateway scrape",
            prometheus,
            (NAMESPACE, pod_labels(by_component["pushgateway"])),
            9091,
        )


def test_no_policy_blocks_what_the_chart_needs(world):
    policies, ns_labels, objects = world
    assert any(p["metadata"]["name"] == "seaweedfs" for p in policies), "KFP's SeaweedFS policy must be read"
    blocked = [
        f"{what}: blocked by {why}"
        for what, src, dst, port in needed(objects)
        if (why := allowed(policies, ns_labels, src, dst, port))
    ]
    assert not blocked, "\n".join(blocked)


def test_the_check_sees_seaweedfs_drop_an_unlabelled_namespace(world):
    """The evaluator is real: without the kubeflow-profile label, KFP's policy drops our S3 traffic."""
    policies, ns_labels, objects = world
    unlabelled = {
        **ns_labels,
        NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE, "app.kubernetes.io/part-of": "mlstack"},
    }
    why = allowed(policies, unlabelled, _predictor(), _seaweedfs(objects), 8333)
    assert why is not None and "seaweedfs" in why
