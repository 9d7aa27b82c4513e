"""The CronJobs that run before any model exists succeed, saying there is nothing to do.

The chart creates the drift and canary-analysis CronJobs at `make deploy`; the first model is
registered and deployed by the first pipeline run, minutes to hours later. Each test runs the
command the rendered chart's CronJob runs (its own ``args``; only the store, workspace and
Pushgateway addresses point at local real servers) against the session's real MLflow server
(set up as the chart runs it) or the real kube-apiserver holding KServe's CRD.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.cluster import named, render_objects
from tests.fixtures.monitoring import register_loan_model

BIN = Path(sys.executable).parent


def _cronjob_args(objects: list[dict], name: str) -> list[str]:
    container = named(objects, "CronJob", name)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return [container["command"][0], *container["args"]]


def _drift(
    args: list[str], tmp_path: Path, tracking_uri: str, pushgateway: str
) -> subprocess.CompletedProcess:
    """The drift CronJob's command with local addresses for the store, workspace and Pushgateway."""
    local = {"--store": str(tmp_path / "payloads"), "--workspace": str(tmp_path / "evidently")}
    command = [str(BIN / args[0])]
    for index, arg in enumerate(args[1:], start=1):
        previous = args[index - 1]
        command.append(pushgateway if previous == "--pushgateway" else local.get(previous, arg))
    env = {**os.environ, "MLSTACK_HOME": str(tmp_path / "home"), "MLSTACK_TRACKING_URI": tracking_uri}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _pushed(gateway: str, model: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{gateway}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels.get("version", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("mlstack_drift") and sample.labels.get("model") == model
    }


def test_drift_cronjob_exits_0_with_nothing_to_do_until_a_champion_exists(
    mlflow_server, pushgateway, kind_values, tmp_path
):
    model = f"first-{uuid.uuid4().hex[:8]}"
    values = {
        **kind_values,
        "serving": {
            **kind_values["serving"],
            "models": [{**kind_values["serving"]["models"][0], "name": model}],
        },
    }
    args = _cronjob_args(render_objects(values), f"mlstack-drift-{model}")
    assert args[:3] == ["mlstack", "drift", "--model"] and args[3] == model

    never = _drift(args, tmp_path, mlflow_server, pushgateway)
    assert never.returncode == 0, never.stderr[-2000:]
    assert f"{model}: nothing to do: model '{model}' is not in the MLflow registry yet" in never.stdout
    pushed = _pushed(pushgateway, model)
    assert pushed[("mlstack_drift_nothing_to_do", "none")] == 1
    assert ("mlstack_drift_last_success_timestamp_seconds", "none") in pushed

    registered = register_loan_model(mlflow_server, model, tmp_path, alias=None)  # registered, not deployed
    no_champion = _drift(args, tmp_path, mlflow_server, pushgateway)
    assert no_champion.returncode == 0, no_champion.stderr[-2000:]
    assert "has no champion alias in the MLflow registry yet" in no_champion.stdout

    from mlflow import MlflowClient

    MlflowClient(mlflow_server).set_registered_model_alias(model, "champion", registered.version)
    judged = _drift(args, tmp_path, mlflow_server, pushgateway)
    assert judged.returncode == 0, judged.stderr[-2000:]
    assert "nothing to do" not in judged.stdout and "INSUFFICIENT DATA" in judged.stdout  # no traffic yet
    pushed = _pushed(pushgateway, model)
    assert ("mlstack_drift_nothing_to_do", "none") not in pushed  # the placeholder group is retired
    assert pushed[("mlstack_drift_insufficient_data", registered.version)] == 1


def test_canary_cronjob_exits_0_with_nothing_to_do_before_the_service_exists(
    kube_api, kubectl_model, kind_values
):
    args = _cronjob_args(render_objects(kind_values), "mlstack-canary-analysis-loan-default")
    assert args[:3] == ["kubectl-model", "analyze", "loan-default"]
    namespace = args[args.index("-n") + 1]
    assert namespace == "mlstack"
    # the same command in the namespace the KServe fixture serves, where no loan-default exists yet
    code, out, err = kubectl_model(*args[1 : args.index("-n")], "-n", "models")
    assert code == 0, err
    assert "verdict: none" in out
    assert "nothing to do: InferenceService 'loan-default' not found in namespace 'models'" in out
