"""The KFP facts (tests/fixtures/kfp_facts.py): the repository uses them, and KFP's source still says them.

The first group always runs: every place that names a KFP Service, port, label, Secret or account
uses the value the facts file holds. The second group needs KFP's source (``MLSTACK_KFP_SOURCE``, a
kubeflow/pipelines git directory: no registry `make test` may use serves it) and checks each fact in
the rendered manifests or the Go source at the tag; without it, it skips saying so.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.fixtures import kfp_facts as kfp
from tests.fixtures.cluster import PLATFORM, ROOT, values_file, versions

pytestmark = pytest.mark.timeout(900)


def _makefile() -> str:
    return (ROOT / "Makefile").read_text()


def test_the_facts_are_for_the_pinned_kfp():
    assert kfp.TAG == versions()["KFP_VERSION"]
    for part in ("kubeflow-pipelines", "kubeflow-pipelines/cluster-scoped"):
        text = (PLATFORM / part / "kustomization.yaml").read_text()
        assert f"?ref={kfp.TAG}" in text, part


def test_the_s3_endpoint_everywhere_is_kfps_seaweedfs():
    host = (
        f"{kfp.SEAWEEDFS_SERVICE.value}.{kfp.NAMESPACE.value}.svc.cluster.local:{kfp.SEAWEEDFS_S3_PORT.value}"
    )
    assert f"KIND_S3_ENDPOINT := {host}\n" in _makefile()
    kind = values_file("values-kind.yaml")
    assert kind["s3"]["endpoint"] == f"http://{host}"
    assert kind["networkPolicy"]["s3Namespace"] == kfp.NAMESPACE.value
    assert kind["networkPolicy"]["s3Port"] == kfp.SEAWEEDFS_S3_PORT.value


def test_our_namespace_carries_the_label_seaweedfs_admits():
    namespace = yaml.safe_load((PLATFORM / "namespace" / "namespace.yaml").read_text())
    key, value = kfp.SEAWEEDFS_POLICY_NAMESPACE_LABEL.value
    assert namespace["metadata"]["labels"][key] == value


def test_kind_secrets_copies_kfps_artifact_secret():
    script = (ROOT / "manifests" / "scripts" / "kind-secrets.sh").read_text()
    for key in kfp.ARTIFACT_SECRET_KEYS.value:
        assert f"secret_value {kfp.NAMESPACE.value} {kfp.ARTIFACT_SECRET.value} {key}" in script
    assert f'pipeline_ns="${{4:-{kfp.NAMESPACE.value}}}"' in script


def test_the_chart_binds_kfps_pipeline_runner():
    values = values_file("values.yaml")
    assert values["pipelineDeploy"]["serviceAccount"] == kfp.PIPELINE_RUNNER.value
    assert values["networkPolicy"]["pipelineNamespace"] == kfp.NAMESPACE.value


def test_the_makefile_names_kfps_ui_and_crd():
    text = _makefile()
    assert (
        f"-n {kfp.NAMESPACE.value} port-forward svc/{kfp.UI_SERVICE.value} 8081:{kfp.UI_PORT.value}" in text
    )
    assert f"crd/{kfp.APPLICATION_CRD.value}" in text


def test_the_e2e_talks_to_kfp_through_the_facts():
    files = {path.name: path.read_text() for path in (ROOT / "tests" / "e2e").glob("*.py")}
    assert any("from tests.fixtures import kfp_facts" in text for text in files.values())
    for name, text in files.items():
        assert not re.search(r'"(kubeflow|ml-pipeline|seaweedfs)"|\b8888\b|\b8333\b', text), (
            f"a KFP literal in {name}"
        )


# ------------------------------------------------------------------ against KFP's source


def _source(path: str) -> str:
    from tests.fixtures.platform import _kfp_git

    proc = subprocess.run(
        ["git", f"--git-dir={_kfp_git()}", "show", f"{kfp.TAG}:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _rendered(part: str) -> list[dict]:
    from tests.fixtures.platform import upstream_objects

    kustomization = yaml.safe_load((PLATFORM / part / "kustomization.yaml").read_text())
    (url,) = kustomization["resources"]
    return upstream_objects(url)


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} in KFP {kfp.TAG}"
    return found[0]


def _requests(container: dict) -> tuple[float, float]:
    from tests.fixtures.resource_budget import cpu_cores, mebibytes

    requests = (container.get("resources") or {}).get("requests") or {}
    return cpu_cores(requests.get("cpu")), mebibytes(requests.get("memory"))


def test_cluster_scoped_facts_hold_in_kfp_source():
    objects = _rendered("kubeflow-pipelines/cluster-scoped")
    _one(objects, "Namespace", kfp.NAMESPACE.value)
    _one(objects, "CustomResourceDefinition", kfp.APPLICATION_CRD.value)


def test_namespaced_facts_hold_in_kfp_source():
    objects = _rendered("kubeflow-pipelines")
    seaweedfs = _one(objects, "Service", kfp.SEAWEEDFS_SERVICE.value)
    assert seaweedfs["metadata"]["namespace"] == kfp.NAMESPACE.value
    assert kfp.SEAWEEDFS_S3_PORT.value in [p["port"] for p in seaweedfs["spec"]["ports"]]
    policy = _one(objects, "NetworkPolicy", "seaweedfs")
    key, value = kfp.SEAWEEDFS_POLICY_NAMESPACE_LABEL.value
    admitted = [
        rule
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        for expression in (peer.get("namespaceSelector") or {}).get("matchExpressions", [])
        if expression["key"] == key and expression["operator"] == "In" and value in expression["values"]
    ]
    assert admitted and kfp.SEAWEEDFS_S3_PORT.value in [p["port"] for p in admitted[0]["ports"]]
    secret = _one(objects, "Secret", kfp.ARTIFACT_SECRET.value)
    assert set(kfp.ARTIFACT_SECRET_KEYS.value) <= set(secret.get("stringData") or secret.get("data") or {})
    _one(objects, "ServiceAccount", kfp.PIPELINE_RUNNER.value)
    for service, port in ((kfp.API_SERVICE, kfp.API_PORT), (kfp.UI_SERVICE, kfp.UI_PORT)):
        assert port.value in [p["port"] for p in _one(objects, "Service", service.value)["spec"]["ports"]]
    requests = {
        o["metadata"]["name"]: _requests(o["spec"]["template"]["spec"]["containers"][0])
        for o in objects
        if o["kind"] == "Deployment"
    }
    assert {name: r for name, r in requests.items() if r != (0.0, 0.0)} == kfp.DEPLOYMENT_REQUESTS.value


def test_go_and_argo_facts_hold_in_kfp_source():
    assert f'DefaultPipelineRunnerServiceAccount = "{kfp.PIPELINE_RUNNER.value}"' in _source(
        kfp.PIPELINE_RUNNER.path
    )
    assert f'HandleFunc("{kfp.API_HEALTH_PATH.value}"' in _source(kfp.API_HEALTH_PATH.path)
    patch = yaml.safe_load(_source(kfp.WORKFLOW_CONTROLLER_REQUESTS.path))
    assert (
        _requests(patch["spec"]["template"]["spec"]["containers"][0])
        == kfp.WORKFLOW_CONTROLLER_REQUESTS.value
    )
    configmap = yaml.safe_load(_source(kfp.EXECUTOR_REQUESTS.path))
    executor = yaml.safe_load(configmap["data"]["executor"])
    assert "resources" not in executor and kfp.EXECUTOR_REQUESTS.value == (0.0, 0.0)
    argo = _source("backend/src/v2/compiler/argocompiler/argo.go")
    for name, fact in (
        ("driverResources", kfp.DRIVER_POD_REQUESTS),
        ("launcherResources", kfp.LAUNCHER_INIT_REQUESTS),
    ):
        block = argo.split(f"var {name} = ", 1)[1].split("\n}\n", 1)[0]
        requests = block.split("Requests:", 1)[1]
        cpu = re.search(r'ResourceCPU:\s+k8sres.MustParse\("([^"]+)"\)', requests)
        memory = re.search(r'ResourceMemory:\s+k8sres.MustParse\("([^"]+)"\)', requests)
        from tests.fixtures.resource_budget import cpu_cores, mebibytes

        found = (cpu_cores(cpu.group(1) if cpu else None), mebibytes(memory.group(1) if memory else None))
        assert found == fact.value, name
