"""Every namespaced object `make platform` and `make deploy` apply lands in a namespace an earlier step
(or the same apply, before it) created: the upstream release content at the pinned versions, never
stubs. KServe's release file, which has no Namespace, is the case this catches.
"""

from __future__ import annotations

import pytest

from tests.fixtures.kube_tools import tool
from tests.fixtures.platform import BUILTIN_NAMESPACES, KFP_OMITTED, Step, all_loaded

# renders and builds the whole platform (Go modules, kustomize): minutes on a loaded machine
pytestmark = [pytest.mark.unit, pytest.mark.timeout(1800)]

# built-in kinds without a namespace (Kubernetes 1.34); CRDs say their scope themselves
CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
    "PriorityClass",
    "StorageClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
}


def _crd_scopes(objects) -> dict[str, str]:
    return {
        o["spec"]["names"]["kind"]: o["spec"]["scope"]
        for o in objects
        if o["kind"] == "CustomResourceDefinition"
    }


def target_namespace(obj: dict, step: Step, scopes: dict[str, str]) -> str | None:
    """The namespace ``obj`` is written to (None: cluster-scoped)."""
    kind = obj["kind"]
    if kind in CLUSTER_SCOPED or scopes.get(kind) == "Cluster":
        return None
    return (obj.get("metadata") or {}).get("namespace") or step.default_namespace


def missing_namespaces(loaded: list[Step]) -> list[str]:
    """Objects whose namespace nothing before them creates, as ``line: Kind/name -> ns``."""
    created = set(BUILTIN_NAMESPACES)
    scopes: dict[str, str] = {}
    problems = []
    for step in loaded:
        scopes |= _crd_scopes(step.objects)
        for obj in step.objects:
            if obj["kind"] == "Namespace":
                created.add(obj["metadata"]["name"])
        for obj in step.objects:
            namespace = target_namespace(obj, step, scopes)
            if namespace is not None and namespace not in created:
                problems.append(
                    f"{step.line}: {obj['kind']}/{obj['metadata']['name']} -> namespace {namespace}"
                )
    return problems


@pytest.fixture(autouse=True)
def _built_tools():
    """kubectl builds the kustomizations, helm renders the chart: skip without them (a laptop
    without Go), fail in CI (MLSTACK_REQUIRE_CONTROL_PLANE=1)."""
    tool("kubectl")
    tool("helm")


def load_all(tmp_path) -> tuple[list[Step], list[str]]:
    """Every step with its objects; steps whose upstream content is unavailable here are reported."""
    return all_loaded()


def test_every_namespaced_object_targets_a_namespace_created_before(tmp_path):
    loaded, unavailable = load_all(tmp_path)
    assert any(s.kind == "helm-chart" for s in loaded), "the chart step must always be checked"
    problems = missing_namespaces(loaded)
    if unavailable:
        # a namespace only an unavailable step would create cannot be judged; anything else is a failure
        unjudged = {"kubeflow"} if any(u.startswith("kubeflow-pipelines") for u in unavailable) else set()
        real = [p for p in problems if p.rsplit(" ", 1)[-1] not in unjudged]
        assert not real, "\n".join(real)
        pytest.skip(
            f"not judged (upstream not available): {unavailable}; {len(problems)} objects in {unjudged}"
        )
    assert not problems, "\n".join(problems)
    if KFP_OMITTED:
        print("left out of KFP (github.com only):", *KFP_OMITTED, sep="\n  ")


def test_the_check_fails_without_the_kserve_namespace(tmp_path):
    """The check is real: drop our Namespace from the KServe step and KServe's objects have nowhere to go."""
    loaded = [s for s in all_loaded()[0] if not s.target.startswith("kubeflow-pipelines")]
    kserve = next(s for s in loaded if s.target == "kserve")
    assert not [p for p in missing_namespaces(loaded) if "namespace kserve" in p]
    kserve.objects = [o for o in kserve.objects if o["kind"] != "Namespace"]
    problems = [p for p in missing_namespaces(loaded) if "namespace kserve" in p]
    assert any("Deployment/kserve-controller-manager" in p for p in problems), problems
