"""The opt-in rollout controller in the chart: off by default; on, it and MLflow are wired to each other.

Rendered by the real helm (tests/fixtures/cluster.py). What the API server itself judges (Pod
Security, RBAC answers, the controller running on its own token) is in
tests/integration/test_chart_rollouts.py; the generic policy checks of test_chart_policy.py run
over this rendering too (chart_objects' "rollouts" parameter).
"""

from __future__ import annotations

import json

import pytest

from mlstack.serving.rollout_controller.app import WEBHOOK_PATH
from tests.fixtures.cluster import (
    ROLLOUTS_ON,
    HelmFailed,
    by_kind,
    containers_of,
    deep_merge,
    pod_specs,
    render_objects,
    values_file,
)

NAME = "mlstack-rollout-controller"
MLFLOW_WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS",
}


def named(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container_env(obj, name=None):
    (_, spec), *_ = pod_specs(obj)
    (container,) = [c for c in containers_of(spec) if name in (None, c["name"])]
    return {e["name"]: e for e in container.get("env", [])}


def test_off_by_default_and_mlflow_keeps_its_webhook_defaults(chart_default, chart_kind):
    for objects in (chart_default, chart_kind):
        assert not [o for o in objects if "rollout-controller" in o["metadata"]["name"]]
        env = container_env(named(objects, "Deployment", "mlstack-mlflow"), "mlflow")
        assert not MLFLOW_WEBHOOK_ENV & set(env)


def test_mlflow_may_call_the_controller_and_shares_one_key(chart_rollouts):
    env = container_env(named(chart_rollouts, "Deployment", "mlstack-mlflow"), "mlflow")
    assert env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlstack-mlflow-webhooks",
        "key": "encryption-key",
    }
    assert env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"]["value"] == "http,https"
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"]["value"] == "true"


def test_the_webhook_url_is_the_controllers_service(chart_rollouts):
    deployment = named(chart_rollouts, "Deployment", NAME)
    env = container_env(deployment)
    service = named(chart_rollouts, "Service", NAME)
    port = service["spec"]["ports"][0]["port"]
    assert env["MLSTACK_ROLLOUT__WEBHOOK_URL"]["value"] == (
        f"http://{NAME}.mlstack.svc.cluster.local:{port}{WEBHOOK_PATH}"
    )
    assert env["MLSTACK_ROLLOUT__PORT"]["value"] == str(port)
    assert env["MLSTACK_ROLLOUT__HOST"]["value"] == "0.0.0.0"
    assert env["MLSTACK_ROLLOUT__IDENTITY"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MLSTACK_ROLLOUT__WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlstack-rollout-webhook",
        "key": "webhook-secret",
    }
    (_, spec), *_ = pod_specs(deployment)
    assert spec["automountServiceAccountToken"] is True and spec["serviceAccountName"] == NAME
    assert containers_of(spec)[0]["command"] == ["mlstack", "rollout", "controller"]


def test_the_controller_manages_every_served_model_and_its_settings_parse(chart_rollouts, monkeypatch):
    from mlstack.core.settings import load_settings

    env = container_env(named(chart_rollouts, "Deployment", NAME))
    models = [m["name"] for m in values_file("values-kind.yaml")["serving"]["models"]]
    assert json.loads(env["MLSTACK_ROLLOUT__INFERENCE_SERVICES"]["value"]) == models
    for name, item in env.items():
        if name.startswith("MLSTACK_") and "value" in item:
            monkeypatch.setenv(name, item["value"])
    settings = load_settings()
    assert settings.rollout.inference_services == models
    assert settings.rollout.namespace == "mlstack"
    assert (settings.rollout.resync_seconds, settings.canary.initial_percent) == (60.0, 10)


def test_rbac_is_its_models_its_lease_and_events(chart_rollouts):
    role = named(chart_rollouts, "Role", NAME)
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "resourceNames": ["loan-default"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["mlstack-rollout-controller"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    ]
    from mlstack.core.settings import RolloutConfig

    assert role["rules"][1]["resourceNames"] == [RolloutConfig().lease_name]  # kubectl model reads this one


def test_network_mlflow_to_controller_and_controller_to_mlflow_and_the_api(chart_rollouts):
    port = named(chart_rollouts, "Service", NAME)["spec"]["ports"][0]["port"]
    policies = {p["metadata"]["name"]: p for p in by_kind(chart_rollouts, "NetworkPolicy")}
    mlflow_out = policies["mlstack-mlflow"]["spec"]["egress"]
    to_controller = [
        r
        for r in mlflow_out
        if any(
            (peer.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component")
            == "rollout-controller"
            for peer in r["to"]
        )
    ]
    assert [r["ports"] for r in to_controller] == [[{"protocol": "TCP", "port": port}]]
    mine = policies[NAME]["spec"]
    ingress_from = [
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        for p in mine["ingress"][0]["from"]
    ]
    assert "mlflow" in ingress_from and mine["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]
    egress_ports = sorted(p["port"] for rule in mine["egress"] for p in rule["ports"])
    assert egress_ports == [443, 5000, 6443]


def test_no_models_to_manage_is_refused_not_rendered_as_every_service():
    """An empty resourceNames list in the Role would grant every InferenceService of the namespace."""
    values = deep_merge(values_file("values-kind.yaml"), ROLLOUTS_ON)
    values["serving"]["models"] = []
    with pytest.raises(HelmFailed, match="/serving/models': minItems"):
        render_objects(values)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"replicas": 0}, "replicas"),
        ({"resyncSeconds": 1}, "resyncSeconds"),
        ({"initialPercent": 0}, "initialPercent"),
        ({"webhookSecretName": "Bad_Name"}, "webhookSecretName"),
        ({"enabeld": True}, "enabeld"),
    ],
)
def test_bad_values_are_refused_naming_the_field(override, where):
    with pytest.raises(HelmFailed, match=where):
        render_objects({"rolloutController": {"enabled": True, **override}})
