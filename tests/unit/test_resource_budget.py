"""The kind worker can hold what `make platform`, `make deploy` and one pipeline run ask for.

The budget (tests/fixtures/resource_budget.py says what is counted, and where each figure not
rendered here was read) is compared with the minimum machine docs/cluster.md states and with the
runner .github/workflows/e2e-kind.yaml runs on. Two sums:

- everything at once: every pod of the platform, the chart (one pod per CronJob), one pipeline run
  (the train step's pod and a KFP driver pod) and the two predictor pods the run deploys. The
  documented minimum must hold it: then nothing ever waits for room.
- the hard floor: the long-running pods plus the largest single short-lived pod. Below it some pod
  stays Pending for good (the train step, in issue 22); the CI runner must be above it.

Memory is compared with what the kubelet can hand out: the machine minus its 100 MiB eviction
threshold (kubelet default ``evictionHard: memory.available<100Mi``; kind sets no reservations).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.fixtures import kfp_facts, resource_budget
from tests.fixtures.cluster import ROOT, render_objects, values_file
from tests.fixtures.resource_budget import Row

# renders the upstream platform from Go modules: minutes on a loaded machine
pytestmark = pytest.mark.timeout(1800)

EVICTION_MIB = 100
# GitHub-hosted standard runners for public repositories (docs.github.com, "GitHub-hosted runners
# reference"; not verified here): runs-on label -> (vCPUs, GiB)
RUNNERS = {"ubuntu-latest": (4, 16), "ubuntu-24.04": (4, 16)}


def _train_pod() -> tuple[float, float]:
    """The train step's pod as KFP runs it: the compiled requests next to the kfp-launcher init container."""
    from kfp import compiler

    from mlstack.pipelines.training import training_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "training.yaml"
        compiler.Compiler().compile(training_pipeline, str(path))
        spec = next(yaml.safe_load_all(path.read_text()))
    resources = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]["resources"]
    # without a request Kubernetes takes the limit as the request (what made the old step unschedulable)
    cpu = resources.get("resourceCpuRequest", resources.get("resourceCpuLimit"))
    memory = resources.get("resourceMemoryRequest", resources.get("resourceMemoryLimit"))
    container = {"resources": {"requests": {"cpu": cpu, "memory": memory}}}
    launcher_cpu, launcher_mib = kfp_facts.LAUNCHER_INIT_REQUESTS.value
    launcher = {"resources": {"requests": {"cpu": launcher_cpu, "memory": f"{launcher_mib}Mi"}}}
    executor_cpu, executor_mib = kfp_facts.EXECUTOR_REQUESTS.value  # Argo's wait sidecar
    wait = {"resources": {"requests": {"cpu": executor_cpu, "memory": f"{executor_mib}Mi"}}}
    return resource_budget.pod_requests({"containers": [container, wait], "initContainers": [launcher]})


def _monitoring() -> list[Row]:
    values = yaml.safe_load((ROOT / "manifests" / "platform" / "monitoring" / "values.yaml").read_text())
    reloader_cpu, reloader_mib = resource_budget.MONITORING_DEFAULTS["config-reloader"]

    def requests(block: dict) -> tuple[float, float]:
        return resource_budget.container_requests({"resources": block["resources"]})

    prometheus = requests(values["prometheus"]["prometheusSpec"])
    alertmanager = requests(values["alertmanager"]["alertmanagerSpec"])
    grafana = requests(values["grafana"])
    return [
        Row(
            "kube-prometheus-stack",
            "prometheus + config-reloader",
            1,
            prometheus[0] + reloader_cpu,
            prometheus[1] + reloader_mib,
        ),
        Row(
            "kube-prometheus-stack",
            "alertmanager + config-reloader",
            1,
            alertmanager[0] + reloader_cpu,
            alertmanager[1] + reloader_mib,
        ),
        Row("kube-prometheus-stack", "grafana", 1, *grafana),
    ]


@pytest.fixture(scope="module")
def budget() -> tuple[list[Row], list[Row]]:
    """(long-running rows, short-lived rows) on the worker."""
    from tests.fixtures.platform import all_loaded

    steps, _ = all_loaded()  # KFP is taken from its facts file whether or not its source is here
    platform: list[dict] = []
    long_running: list[Row] = []
    seen: set[str] = set()
    for step in steps:
        if step.kind != "kustomize" or step.target in seen or step.target.startswith("kubeflow-pipelines"):
            continue
        seen.add(step.target)
        platform += step.objects
        long_running += resource_budget.workload_rows(step.target, step.objects)
    cpu, mib = kfp_facts.platform_requests()
    long_running.append(Row("kubeflow-pipelines", "Deployments (tests/fixtures/kfp_facts.py)", 1, cpu, mib))
    long_running += _monitoring()
    long_running += [
        Row("kind", name, *figures) for name, figures in resource_budget.KIND_WORKER_PODS.items()
    ]
    chart = render_objects(values_file("values-kind.yaml"))
    chart_rows = resource_budget.workload_rows("chart (values-kind)", chart)
    long_running += [r for r in chart_rows if not r.name.startswith("CronJob/")]
    template, replicas = resource_budget.isvc_template(chart)
    long_running.append(
        Row(
            "deploy step",
            "InferenceService predictor pods",
            replicas,
            *resource_budget.predictor_pod(platform, template),
        )
    )
    short_lived = [r for r in chart_rows if r.name.startswith("CronJob/")]
    short_lived.append(Row("pipeline run", "train step pod", 1, *_train_pod()))
    short_lived.append(Row("pipeline run", "KFP driver pod", 1, *kfp_facts.DRIVER_POD_REQUESTS.value))
    print(
        "\n"
        + "\n".join(
            f"{r.source:24s} {r.name:58s} {r.pods} x {r.cpu:.3f} CPU {r.memory_mib:7.0f} MiB"
            for r in long_running + short_lived
        )
    )
    return long_running, short_lived


def _totals(rows: list[Row]) -> tuple[float, float]:
    return sum(r.total_cpu for r in rows), sum(r.total_memory_mib for r in rows)


def _floor(long_running: list[Row], short_lived: list[Row]) -> tuple[float, float]:
    cpu, mib = _totals(long_running)
    return cpu + max(r.cpu for r in short_lived), mib + max(r.memory_mib for r in short_lived)


def _documented_minimum() -> tuple[int, int]:
    text = (ROOT / "docs" / "cluster.md").read_text()
    match = re.search(r"at least \*\*(\d+) CPUs and\s+(\d+) GiB of memory\*\*", text)
    assert match, "docs/cluster.md must state the minimum as 'at least **N CPUs and M GiB of memory**'"
    return int(match.group(1)), int(match.group(2))


def test_the_documented_minimum_holds_everything_at_once(budget):
    cpu, mib = _totals(budget[0] + budget[1])
    cpus, gib = _documented_minimum()
    assert cpu <= cpus, f"{cpu:.2f} CPU requested, docs/cluster.md says {cpus}"
    assert mib <= gib * 1024 - EVICTION_MIB, f"{mib:.0f} MiB requested, docs/cluster.md says {gib} GiB"
    # the figures the docs give are these sums (docs that cannot drift)
    text = (ROOT / "docs" / "cluster.md").read_text()
    assert f"{cpu:.2f} CPU and {mib / 1024:.1f} GiB" in text, (
        f"docs/cluster.md must give {cpu:.2f} CPU and {mib / 1024:.1f} GiB"
    )


def test_the_ci_runner_is_above_the_hard_floor(budget):
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    label = workflow["jobs"]["e2e"]["runs-on"]
    assert label in RUNNERS, f"unknown runner {label!r}: add its size to RUNNERS"
    cpus, gib = RUNNERS[label]
    cpu, mib = _floor(*budget)
    assert cpu <= cpus, (
        f"the worker needs {cpu:.2f} CPU for its pods and the largest short-lived one; {label} has {cpus}"
    )
    assert mib <= gib * 1024 - EVICTION_MIB
    text = (ROOT / "docs" / "cluster.md").read_text()
    assert f"{cpu:.2f} CPU and {mib / 1024:.1f} GiB" in text, (
        f"docs/cluster.md must give the floor {cpu:.2f} CPU and {mib / 1024:.1f} GiB"
    )


def test_the_train_step_requests_what_it_was_measured_to_use():
    """Requests at least the measured peak RSS of every estimator (bench/results/train.json), at most its limits."""
    import json

    measured = json.loads((ROOT / "bench" / "results" / "train.json").read_text())
    cpu, mib = _train_pod()
    assert mib >= max(e["peak_rss_mib"] for e in measured["estimators"].values())
    assert measured["rows"] == 50_000 and cpu <= 2


def test_the_budget_sees_a_step_that_would_not_fit(budget):
    """The comparison can fail: the old train step (limits 2 CPU / 4G, which became its requests)."""
    long_running, short_lived = budget
    old = [r for r in short_lived if r.name != "train step pod"] + [
        Row("pipeline run", "old train pod", 1, 2.0, 4e9 / 2**20)
    ]
    cpus, _ = RUNNERS["ubuntu-latest"]
    assert _floor(long_running, old)[0] > cpus
