"""manifests/: the kind config, the one versions file, and every platform kustomization built with the
real upstream release content (tests/fixtures/platform.py; no stubs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate.utils
import pytest
import yaml

from tests.fixtures.cluster import (
    CHART,
    MANIFESTS,
    PLATFORM,
    ROOT,
    is_remote,
    kustomize_build,
    read_env_file,
    validate_object,
    versions,
)

KUSTOMIZATIONS = sorted(p.parent for p in PLATFORM.rglob("kustomization.yaml"))
REQUIRED_VERSIONS = {
    "KIND_VERSION",
    "KIND_NODE_IMAGE",
    "KUBERNETES_VERSION",
    "CERT_MANAGER_VERSION",
    "KNATIVE_SERVING_VERSION",
    "KOURIER_VERSION",
    "KSERVE_VERSION",
    "KFP_VERSION",
    "KUBE_PROMETHEUS_STACK_VERSION",
    "HELM_VERSION",
}


def stub_name(directory: Path) -> str:
    return "-".join(directory.relative_to(PLATFORM).parts)


def test_versions_file_pins_every_platform_component():
    pinned = versions()
    assert REQUIRED_VERSIONS <= set(pinned), f"missing in versions.env: {REQUIRED_VERSIONS - set(pinned)}"
    assert re.fullmatch(r"kindest/node:v[0-9.]+@sha256:[0-9a-f]{64}", pinned["KIND_NODE_IMAGE"]), (
        "the kind node image must be pinned by digest"
    )
    # the node image's Kubernetes is the version every object is validated against
    node_version = re.search(r":v([0-9.]+)@", pinned["KIND_NODE_IMAGE"]).group(1)
    assert node_version == pinned["KUBERNETES_VERSION"]


def test_kubernetes_validate_knows_the_pinned_version():
    minor = ".".join(versions()["KUBERNETES_VERSION"].split(".")[:2])
    supported = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    assert minor in supported, f"kubernetes-validate supports {sorted(supported)}, not {minor}"


def test_env_file_parser_rejects_malformed_lines(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text("KIND_VERSION = v0.30.0\n")
    with pytest.raises(ValueError, match="malformed"):
        read_env_file(bad)


def test_kind_config_is_one_control_plane_one_worker_on_the_pinned_image():
    config = yaml.safe_load((MANIFESTS / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in config["nodes"]]
    assert sorted(roles) == ["control-plane", "worker"]
    for node in config["nodes"]:
        assert node["image"] == versions()["KIND_NODE_IMAGE"]


def test_kind_maps_the_kourier_node_ports_to_the_host():
    config = yaml.safe_load((MANIFESTS / "kind-config.yaml").read_text())
    control_plane = next(n for n in config["nodes"] if n["role"] == "control-plane")
    mapped = {m["containerPort"] for m in control_plane["extraPortMappings"]}
    patch = yaml.safe_load((PLATFORM / "kourier" / "kourier-nodeport.yaml").read_text())
    node_ports = {p["nodePort"] for p in patch["spec"]["ports"]}
    assert node_ports == mapped, "kind must expose exactly the node ports Kourier listens on"


def test_kustomizations_reference_the_pinned_versions():
    pinned = versions()
    expected = {
        "cert-manager": f"/releases/download/{pinned['CERT_MANAGER_VERSION']}/",
        "knative-serving": f"/releases/download/knative-{pinned['KNATIVE_SERVING_VERSION']}/",
        "kourier": f"/releases/download/knative-{pinned['KOURIER_VERSION']}/",
        "kserve": f"/releases/download/{pinned['KSERVE_VERSION']}/",
        "kserve-cluster-resources": f"/releases/download/{pinned['KSERVE_VERSION']}/",
        "kubeflow-pipelines": f"?ref={pinned['KFP_VERSION']}",
        "kubeflow-pipelines-cluster-scoped": f"?ref={pinned['KFP_VERSION']}",
    }
    for directory in KUSTOMIZATIONS:
        remote = [
            r
            for r in yaml.safe_load((directory / "kustomization.yaml").read_text()).get("resources", [])
            if is_remote(r)
        ]
        name = stub_name(directory)
        if name not in expected:
            assert not remote, f"{name}: remote resources without a pinned version check"
            continue
        assert remote, f"{name}: expected upstream resources"
        for resource in remote:
            assert expected[name] in resource, f"{name}: {resource} is not the version pinned in versions.env"


def offline_copy(directory: Path, tmp_path: Path) -> Path:
    """The kustomization with its remote resources replaced by the upstream release content."""
    from tests.fixtures.platform import real_copy

    return real_copy(directory, tmp_path)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=stub_name)
def test_kustomization_builds_offline_and_validates(directory, tmp_path):
    """Every patch applies to the real upstream objects; our own objects and patched ones validate."""
    objects = kustomize_build(offline_copy(directory, tmp_path))
    assert objects
    ours = set()
    for path in directory.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    ours.add((doc["kind"], doc["metadata"]["name"]))
    checked = [o for o in objects if (o["kind"], o["metadata"]["name"]) in ours]
    assert len(checked) == len(ours), f"objects of ours missing from the build: {ours}"
    errors = [err for obj in checked for err in validate_object(obj)]
    assert not errors, "\n".join(errors)


def test_knative_is_configured_for_kourier_and_the_local_registry(tmp_path):
    objects = kustomize_build(offline_copy(PLATFORM / "knative-serving", tmp_path))
    data = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    assert data["config-network"]["ingress-class"] == "kourier.ingress.networking.knative.dev"
    # the patches merge into upstream's ConfigMaps rather than replacing them
    assert "_example" in data["config-network"]
    skipped = data["config-deployment"]["registries-skipping-tag-resolving"].split(",")
    assert f"localhost:{versions()['REGISTRY_PORT']}" in skipped
    kind_values = yaml.safe_load((CHART / "values-kind.yaml").read_text())
    assert kind_values["imageRegistry"] in skipped, "Knative would try to resolve our image tags"
    assert data["config-features"]["secure-pod-defaults"] == "enabled"


def test_knative_admits_what_the_chart_puts_in_predictor_pods(tmp_path, chart_default):
    """Knative's webhook rejects pod-level securityContext and emptyDir unless their features are on."""
    features = next(
        o["data"]
        for o in kustomize_build(offline_copy(PLATFORM / "knative-serving", tmp_path))
        if o["metadata"]["name"] == "config-features"
    )
    (isvc,) = [o for o in chart_default if o["kind"] == "InferenceService"]
    if isvc["spec"]["predictor"].get("securityContext"):
        assert features["kubernetes.podspec-securitycontext"] == "enabled"
    (runtime,) = [o for o in chart_default if o["kind"] == "ClusterServingRuntime"]
    if any("emptyDir" in v for v in runtime["spec"].get("volumes", [])):
        assert features["kubernetes.podspec-volumes-emptydir"] == "enabled"


def test_every_knative_feature_key_we_set_is_one_upstream_has(tmp_path):
    """`kubernetes.podspec-emptydir` is not a key; upstream's config-features lists them all."""
    from tests.fixtures.upstream import release_objects

    upstream = next(
        o
        for o in release_objects("knative-serving")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config-features"
    )
    known = set(upstream["data"]) | set(
        # the block scalar is read without its indentation: each documented key starts a line
        re.findall(r"^([a-z][\w.-]+):", upstream["data"].get("_example", ""), re.M)
    )
    ours = yaml.safe_load((PLATFORM / "knative-serving" / "config-features.yaml").read_text())["data"]
    assert set(ours) <= known, f"not Knative feature keys: {set(ours) - known}"


def test_kserve_defaults_to_serverless_without_istio(tmp_path):
    objects = kustomize_build(offline_copy(PLATFORM / "kserve", tmp_path))
    config = next(o for o in objects if o["metadata"]["name"] == "inferenceservice-config")["data"]
    assert json.loads(config["deploy"])["defaultDeploymentMode"] == "Serverless"
    ingress = json.loads(config["ingress"])
    assert ingress["disableIstioVirtualHost"] is True
    assert ingress["ingressClassName"] == "kourier"
    # untouched upstream keys survive the patch
    assert "storageInitializer" in config


def test_kourier_is_a_node_port_service(tmp_path):
    objects = kustomize_build(offline_copy(PLATFORM / "kourier", tmp_path))
    # the real kourier.yaml has several Services (kourier-internal, the controller's): ours is the gateway
    (service,) = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "kourier"]
    assert service["spec"]["type"] == "NodePort"
    assert {p["name"]: p["nodePort"] for p in service["spec"]["ports"]} == {"http2": 31080, "https": 31443}


def test_our_namespace_warns_and_audits_restricted():
    objects = kustomize_build(PLATFORM / "namespace")
    (namespace,) = objects
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")


def test_kind_s3_endpoint_matches_the_chart_values():
    makefile = (ROOT / "Makefile").read_text()
    endpoint = re.search(r"^KIND_S3_ENDPOINT := (\S+)$", makefile, re.M).group(1)
    kind_values = yaml.safe_load((CHART / "values-kind.yaml").read_text())
    assert kind_values["s3"]["endpoint"] == f"http://{endpoint}"


def test_prometheus_stack_values_select_every_monitor():
    values = yaml.safe_load((PLATFORM / "monitoring" / "values.yaml").read_text())
    spec = values["prometheus"]["prometheusSpec"]
    for key in (
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False, f"{key} must be false or Prometheus ignores our monitors"
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["label"] == "grafana_dashboard" and sidecar["searchNamespace"] == "ALL"
    # Grafana's image is the grafana chart's default (kube-prometheus-stack pins that chart)
    assert "image" not in values["grafana"]


def test_offline_build_fails_when_a_patch_targets_nothing(tmp_path):
    """The build is a real check: a patch for an object upstream does not have breaks it."""
    target = offline_copy(PLATFORM / "kourier", tmp_path)
    patch = yaml.safe_load((target / "kourier-nodeport.yaml").read_text())
    patch["metadata"]["name"] = "kourier-typo"
    (target / "kourier-nodeport.yaml").write_text(yaml.safe_dump(patch))
    with pytest.raises(AssertionError, match="kourier-typo"):
        kustomize_build(target)
