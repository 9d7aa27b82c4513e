"""tools/ builds and renders exactly the versions manifests/versions.env pins (no Go needed to check)."""

from __future__ import annotations

import re
import subprocess

from tests.fixtures.kube_tools import ROOT, TOOLS, required_modules, tool_versions, versions
from tests.fixtures.upstream import (
    CERT_MANAGER,
    KNATIVE_SERVING,
    KOURIER,
    KSERVE,
    knative_tag,
    module_version,
)


def test_the_control_plane_modules_pin_the_versions_file():
    pinned = versions()
    assert required_modules(TOOLS / "etcd")["go.etcd.io/etcd/server/v3"] == pinned["ETCD_VERSION"]
    assert required_modules(TOOLS / "kubernetes")["k8s.io/kubernetes"] == "v" + pinned["KUBERNETES_VERSION"]
    assert required_modules(TOOLS / "helm")["helm.sh/helm/v3"] == pinned["HELM_VERSION"]


def test_the_reconciler_modules_pin_the_versions_file():
    """KServe, Knative Serving (module v0.<m>.<p> = release v1.<m-27>.<p>) and kwok at the pinned tags."""
    pinned = versions()
    assert required_modules(TOOLS / "kserve")["github.com/kserve/kserve"] == pinned["KSERVE_VERSION"]
    assert (
        knative_tag(required_modules(TOOLS / "knative")["knative.dev/serving"])
        == pinned["KNATIVE_SERVING_VERSION"]
    )
    assert required_modules(TOOLS / "kwok")["sigs.k8s.io/kwok"] == pinned["KWOK_VERSION"]
    # the same versions the tests render the platform content from
    assert required_modules(TOOLS / "knative")["knative.dev/serving"] == module_version(KNATIVE_SERVING)
    assert required_modules(TOOLS / "kserve")["github.com/kserve/kserve"] == module_version(KSERVE)
    assert required_modules(TOOLS / "kwok")["sigs.k8s.io/kwok"] == module_version("sigs.k8s.io/kwok")


def test_the_kserve_module_repeats_kserves_own_replace_directives():
    """A dependency's replace directives are not applied: tools/kserve/go.mod must carry kserve's own
    (github.com/kserve/kserve v0.20.0 go.mod pins controller-runtime v0.22.5 and k8s.io v0.34.x)."""
    text = (TOOLS / "kserve" / "go.mod").read_text()
    assert "sigs.k8s.io/controller-runtime => sigs.k8s.io/controller-runtime v0.22.5" in text
    assert "k8s.io/client-go => k8s.io/client-go v0.34.5" in text


def test_every_kubernetes_staging_module_is_replaced_at_the_matching_version():
    staging = "v0." + pinned_minor_patch()
    text = (TOOLS / "kubernetes" / "go.mod").read_text()
    replaced = dict(re.findall(r"^\s*(k8s\.io/[a-z-]+) => k8s\.io/[a-z-]+ (v\S+)", text, re.M))
    assert len(replaced) >= 30
    assert set(replaced.values()) == {staging}


def pinned_minor_patch() -> str:
    return versions()["KUBERNETES_VERSION"].split(".", 1)[1]


def test_the_upstream_modules_are_the_platform_versions():
    pinned = versions()
    assert module_version(CERT_MANAGER) == pinned["CERT_MANAGER_VERSION"]
    assert knative_tag(module_version(KNATIVE_SERVING)) == pinned["KNATIVE_SERVING_VERSION"]
    assert knative_tag(module_version(KOURIER)) == pinned["KOURIER_VERSION"]
    assert module_version(KSERVE) == pinned["KSERVE_VERSION"]


def test_knative_tag_mapping():
    assert knative_tag("v0.48.1") == "v1.21.1"
    assert knative_tag("v0.48.0") == "v1.21.0"


def test_every_go_module_has_its_go_sum():
    for module in ("etcd", "kubernetes", "helm", "upstream", "kserve", "knative", "kwok"):
        assert (TOOLS / module / "go.sum").stat().st_size > 0, module


def test_make_test_tools_builds_each_binary_at_its_pinned_path():
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "test-tools", "GO=go"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    for name, version in tool_versions().items():
        assert f"bin/{name}-{version}" in out, name
