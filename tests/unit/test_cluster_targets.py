"""`make help` lists the cluster targets; `make e2e` and its workflow skip or fail clearly."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from tests.fixtures.cluster import ROOT

CLUSTER = ["kind-up", "kind-down", "platform", "images", "kind-load", "deploy", "undeploy"]
OPERATIONS = ["pipeline-ui", "mlflow-ui", "grafana", "evidently-ui", "e2e"]


def make_help() -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout)


def test_make_help_lists_every_cluster_target_in_its_group():
    text = make_help()
    groups = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and not line.startswith("Usage"):
            current = line.strip()
        elif line.strip() and current:
            target, _, description = line.strip().partition(" ")
            groups.setdefault(current, {})[target] = description.strip()
    for group, targets in (("Cluster", CLUSTER), ("Operations", OPERATIONS)):
        for target in targets:
            assert target in groups.get(group, {}), f"`make help` does not list {target} under {group}"
            assert len(groups[group][target]) > 10, f"{target} needs a one-line description"


def test_deploy_is_helm_upgrade_install_with_the_kind_values():
    dry = subprocess.run(["make", "-n", "deploy"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert re.search(
        r"helm upgrade --install mlstack helm/mlstack -n mlstack -f helm/mlstack/values-kind.yaml", dry.stdout
    )


def test_kind_up_uses_the_pinned_node_image_and_config():
    dry = subprocess.run(["make", "-n", "kind-up"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    versions = dict(
        line.split("=", 1)
        for line in (ROOT / "manifests/versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert f"--image {versions['KIND_NODE_IMAGE']} --config manifests/kind-config.yaml" in dry.stdout


def test_e2e_skips_with_a_clear_message_without_a_cluster(tmp_path):
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    env.pop("MLSTACK_E2E_REQUIRE_CLUSTER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "tests/e2e", "-rs", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "passed" not in proc.stdout.splitlines()[-1], "nothing may pass without a cluster"
    assert re.search(r"\d+ skipped", proc.stdout.splitlines()[-1])
    assert "no Kubernetes cluster reachable" in proc.stdout and "make kind-up" in proc.stdout


def test_e2e_fails_instead_of_skipping_when_ci_requires_a_cluster(tmp_path):
    env = {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
        "MLSTACK_E2E_REQUIRE_CLUSTER": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "tests/e2e", "-q", "-x", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode != 0 and "no Kubernetes cluster reachable" in proc.stdout


def test_workflow_builds_the_cluster_and_runs_make_e2e():
    workflow = yaml.safe_load((ROOT / ".github/workflows/e2e-kind.yaml").read_text())
    steps = workflow["jobs"]["e2e"]["steps"]
    runs = [step.get("run", "") for step in steps]
    order = ["make kind-up", "make images kind-load", "make deploy", "make e2e"]
    positions = [next(i for i, run in enumerate(runs) if run.startswith(command)) for command in order]
    assert positions == sorted(positions), "the workflow must build, load, deploy, then test"
    e2e_step = steps[positions[-1]]
    assert e2e_step["env"]["MLSTACK_E2E_REQUIRE_CLUSTER"] == "1"


def _recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M).group(1)


def test_e2e_runs_with_the_venv_and_the_plugin_on_path():
    """The e2e calls `mlstack` and `kubectl model` by name: both must be on its PATH."""
    recipe = _recipe("e2e")
    assert 'PATH="$(VENV)/bin:$(BIN):$$PATH"' in recipe
    assert "ln -sf $(VENV)/bin/kubectl-model $(BIN)/kubectl-model" in recipe


def test_kind_load_does_not_use_kind_load():
    """`kind load docker-image` runs `ctr images import --all-platforms` (kind
    pkg/cluster/nodeutils/util.go at v0.30.0), which fails on Docker's containerd image store; the
    nodes pull from the local registry instead."""
    recipe = _recipe("kind-load")
    assert "kind load" not in recipe and "$(KIND) load" not in recipe
    assert "push $(REGISTRY)/$(IMAGE):$(IMAGE_TAG)" in recipe
