"""Issue 22 item 3: the sink, run with the environment the rendered chart gives it, reaches the registry.

The chart is rendered by the real helm (``tests.fixtures.cluster.render_objects``); the sink's
environment is taken from the rendered StatefulSet as it is. Three things a pod has and this machine
does not are supplied the way the cluster would: the Secrets' values (an operator creates them),
cluster DNS (the MLflow Service's name and port are mapped to the real MLflow server fixture, after
checking that they are the rendered Service's), and the pod's volume paths (the WAL and home).
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import httpx
import orjson
import pytest

from mlstack.core import generator, payload
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.conftest import free_port
from tests.fixtures.cluster import by_kind, named, render_objects
from tests.fixtures.monitoring import register_loan_model
from tests.fixtures.serving import start_sink

FEATURES = generator.loan_contract().feature_names
SECRETS = {  # what `make deploy` puts in the Secrets the chart names
    ("mlstack-mlflow-auth", "admin-username"): "admin",
    ("mlstack-mlflow-auth", "admin-password"): "not-used-by-the-test-server",
    ("mlstack-s3", "AWS_ACCESS_KEY_ID"): "test",
    ("mlstack-s3", "AWS_SECRET_ACCESS_KEY"): "test",
}


@pytest.fixture(scope="module")
def chart():
    return render_objects()


def sink_env(chart) -> dict[str, str]:
    """The sink container's environment as rendered, Secret references resolved."""
    (sink,) = [s for s in by_kind(chart, "StatefulSet") if s["metadata"]["name"] == "mlstack-sink"]
    (container,) = sink["spec"]["template"]["spec"]["containers"]
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = SECRETS[(ref["name"], ref["key"])]
    return env


def _pair(client, url: str, ce_id: str, model: str, version: str) -> None:
    row = generator.generate(1, seed=9)[FEATURES].iloc[0].tolist()
    request = {
        "instances": [[None if v != v else v for v in row]]
    }  # positional: names come from the contract
    response = {"predictions": [1], "model_name": model, "model_version": version}
    for kind, body in (("request", request), ("response", response)):
        headers = {
            "ce-id": ce_id,
            "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
            "ce-inferenceservicename": model,
            "ce-namespace": "mlstack",
            "ce-component": "predictor",
        }
        answer = client.post(
            url, headers=headers, content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        )
        assert answer.status_code == 200, answer.text


def _local(env: dict[str, str], tmp_path, tracking_uri: str) -> dict[str, str]:
    local = dict(env)
    local["MLSTACK_TRACKING_URI"] = tracking_uri
    local["MLSTACK_HOME"] = str(tmp_path / "home")
    local["HOME"] = str(tmp_path / "home")
    local["MLSTACK_SINK__HOST"] = "127.0.0.1"
    local.pop("MLSTACK_SINK__WAL_DIR")  # the pod's volume; the test passes --wal-dir
    for name in ("MLSTACK_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        local.pop(name, None)  # the store is a local directory here
    return local


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else None


def test_the_rendered_sink_environment_resolves_a_contract(chart, mlflow_server, tmp_path):
    env = sink_env(chart)
    assert "MLSTACK_TRACKING_URI" in env, "the chart gives the sink no registry address"
    rendered = urlparse(env["MLSTACK_TRACKING_URI"])
    service = named(chart, "Service", "mlstack-mlflow")
    assert rendered.hostname == "mlstack-mlflow.mlstack.svc"
    assert rendered.port == service["spec"]["ports"][0]["port"]
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin" and env["MLFLOW_TRACKING_PASSWORD"]
    # the sink's NetworkPolicy lets it reach that MLflow pod on that port
    policy = named(chart, "NetworkPolicy", "mlstack-sink")
    mlflow_labels = named(chart, "Deployment", "mlstack-mlflow")["spec"]["selector"]["matchLabels"]
    allowed = [
        rule
        for rule in policy["spec"]["egress"]
        if any(peer.get("podSelector", {}).get("matchLabels") == mlflow_labels for peer in rule.get("to", []))
    ]
    assert allowed and {"protocol": "TCP", "port": rendered.port} in allowed[0]["ports"]

    registered = register_loan_model(mlflow_server, "sinkreg", tmp_path, with_reference=False, alias=None)
    # cluster DNS: the rendered Service address is the real MLflow server here
    local = _local(
        env,
        tmp_path,
        env["MLSTACK_TRACKING_URI"].replace(
            f"{rendered.hostname}:{rendered.port}", urlparse(mlflow_server).netloc
        ),
    )
    store = str(tmp_path / "store")
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log", env_extra=local)
    try:
        with httpx.Client(timeout=60) as client:
            _pair(client, sink.url, "reg-1", "sinkreg", registered.version)
            deadline = time.monotonic() + 60
            while _metric(client.get(f"{sink.url}/metrics").text, "mlstack_sink_rows_written_total") != 1:
                assert time.monotonic() < deadline, "the pair was never flushed"
                time.sleep(0.5)
            metrics = client.get(f"{sink.url}/metrics").text
            health = client.get(f"{sink.url}/healthz").json()
    finally:
        sink.stop()
    rows = payload.read_partitioned(f"{store}/predictions", ["model_version"])
    assert set(FEATURES) <= set(rows.columns) and "input_0" not in rows.columns
    assert _metric(metrics, "mlstack_sink_registry_up") == 1
    assert _metric(metrics, 'mlstack_sink_contract_lookups_total{outcome="found"}') == 1
    assert health["status"] == "ok" and health["registry"] == "reachable"


def test_an_unreachable_registry_shows_in_metrics_and_readiness(chart, tmp_path):
    env = sink_env(chart)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the registry is down
    sink = start_sink(
        str(tmp_path / "store"),
        tmp_path / "wal",
        tmp_path / "sink.log",
        env_extra=_local(env, tmp_path, closed),
    )
    try:
        with httpx.Client(timeout=60) as client:
            _pair(client, sink.url, "down-1", "sinkreg", "1")
            deadline = time.monotonic() + 120
            while _metric(client.get(f"{sink.url}/metrics").text, "mlstack_sink_registry_up") != 0:
                assert time.monotonic() < deadline, "the registry failure never showed"
                time.sleep(1)
            metrics = client.get(f"{sink.url}/metrics").text
            health = client.get(f"{sink.url}/healthz")
    finally:
        sink.stop()
    assert _metric(metrics, "mlstack_sink_registry_failures") >= 1
    body = health.json()
    assert health.status_code == 200 and body["status"] == "degraded"  # events are still stored
    assert body["registry"] == "unreachable" and body["registry_error"]
    log = (tmp_path / "sink.log").read_text()
    assert "the registry cannot be reached" in log
