"""The stream scorer in the chart: a StatefulSet whose pod name is the static member id, Kafka
credentials from Secrets, its own NetworkPolicy, optional KEDA scaling capped at the partition count.

The generic chart tests (test_chart_render.py, test_chart_policy.py) hold it to the rules every
workload meets (restricted pods, probes, requests and limits, its own ServiceAccount and allow
policy, settings that exist); tests/integration/test_chart_install.py installs it into a real API
server with Pod Security "restricted" enforced.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.fixtures.cluster import HelmFailed, render_objects, validate_object, values_file
from tests.fixtures.kube_tools import ROOT, versions


def _stream(objects, kind: str, name: str = "mlstack-stream") -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def _container(statefulset: dict, name: str = "stream") -> dict:
    containers = {c["name"]: c for c in statefulset["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"stream", "store-writer"}
    return containers[name]


def _env(statefulset: dict, container: str = "stream") -> dict[str, dict]:
    return {e["name"]: e for e in _container(statefulset, container)["env"]}


def test_off_by_default_on_for_kind(chart_default, chart_kind):
    assert not [o for o in chart_default if "stream" in o["metadata"]["name"]]
    _stream(chart_kind, "StatefulSet")


def test_the_pod_name_is_the_static_member_and_transactional_id(chart_kind):
    statefulset = _stream(chart_kind, "StatefulSet")
    env = _env(statefulset)
    assert env["MLSTACK_STREAM__INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    service = _stream(chart_kind, "Service")
    assert (
        statefulset["spec"]["serviceName"] == service["metadata"]["name"]
        and service["spec"]["clusterIP"] == "None"
    )
    assert env["MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS"]["value"] == "kafka.kafka.svc.cluster.local:9092"
    assert env["MLSTACK_STREAM__GUARANTEE"]["value"] == "exactly_once"
    container = _container(statefulset)
    assert container["args"][:3] == ["stream", "--model", "loan-default"]
    # the store the drift job reads, written by the pod's second container, not the scorer's process
    assert container["args"][3:] == ["--store", "s3://mlstack/payloads", "--no-store-writer"]


def test_the_store_writer_is_its_own_container_with_the_scorers_member_id_and_kafka(chart_kind):
    """Its Parquet flushes must not pause scoring (bench/results/stream.md); it must still be the
    scorer's writer: the same pod name as instance id (its member is <pod>.store), topics and Kafka."""
    statefulset = _stream(chart_kind, "StatefulSet")
    writer = _container(statefulset, "store-writer")
    assert writer["args"] == ["stream-store", "--model", "loan-default", "--store", "s3://mlstack/payloads"]
    env, scorer_env = _env(statefulset, "store-writer"), _env(statefulset)
    assert env["MLSTACK_STREAM__INSTANCE_ID"] == scorer_env["MLSTACK_STREAM__INSTANCE_ID"]
    shared = [name for name in scorer_env if "KAFKA" in name or "TOPIC" in name]
    assert shared and all(env[name] == scorer_env[name] for name in shared)
    assert env["MLSTACK_STREAM__STORE_METRICS_PORT"]["value"] == "9109"
    assert {p["name"]: p["containerPort"] for p in writer["ports"]} == {"store-metrics": 9109}
    assert writer["livenessProbe"]["httpGet"]["port"] == "store-metrics"
    service = _stream(chart_kind, "Service")
    assert {p["name"] for p in service["spec"]["ports"]} == {"metrics", "store-metrics"}
    monitor = _stream(chart_kind, "ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "store-metrics"]


def test_credentials_come_from_secrets_and_tls_files_are_mounted(default_values):
    values = {
        "stream": {
            "enabled": True,
            "kafka": {
                "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
                "securityProtocol": "SASL_SSL",
                "saslMechanism": "SCRAM-SHA-512",
                "saslSecretName": "kafka-scorer",
                "tlsSecretName": "kafka-ca",
                "clientCertificate": True,
                "ports": [9093],
            },
            "keda": {"enabled": True},
        }
    }
    objects = render_objects(values)
    statefulset = _stream(objects, "StatefulSet")
    env = _env(statefulset)
    assert env["MLSTACK_STREAM__KAFKA__SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-scorer", "key": "password"}
    }
    assert env["MLSTACK_STREAM__KAFKA__SSL_CA_LOCATION"]["value"] == "/etc/mlstack/kafka-tls/ca.crt"
    assert env["MLSTACK_STREAM__KAFKA__SSL_KEY_LOCATION"]["value"] == "/etc/mlstack/kafka-tls/tls.key"
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["kafka-tls"]["secret"]["secretName"] == "kafka-ca"
    assert not any("value" in e and "s3cret" in str(e["value"]) for e in env.values())
    # KEDA: replicas left to the HPA KEDA makes, never more than the partitions
    assert "replicas" not in statefulset["spec"]
    scaled = _stream(objects, "ScaledObject")
    assert (
        scaled["spec"]["maxReplicaCount"] == 6 and scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    )
    (trigger,) = scaled["spec"]["triggers"]
    assert (
        trigger["metadata"]["allowIdleConsumers"] == "false" and trigger["metadata"]["sasl"] == "scram_sha512"
    )
    assert trigger["metadata"]["consumerGroup"] == "mlstack-stream-loan-default"  # what the scorer joins
    auth = _stream(objects, "TriggerAuthentication")
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {
        "username",
        "password",
        "ca",
        "cert",
        "key",
    }
    policy = _stream(objects, "NetworkPolicy")
    kafka_rule = policy["spec"]["egress"][0]
    assert kafka_rule["ports"] == [{"protocol": "TCP", "port": 9093}]
    for obj in objects:
        if obj["kind"] in ("StatefulSet", "NetworkPolicy", "Service"):
            assert not validate_object(obj), obj["metadata"]["name"]


def test_the_scorer_may_reach_kafka_mlflow_and_s3_and_only_prometheus_reaches_it(chart_kind):
    policy = _stream(chart_kind, "NetworkPolicy")
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 9108}, {"protocol": "TCP", "port": 9109}]
    kafka, mlflow, s3 = policy["spec"]["egress"]
    assert kafka["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]
    assert mlflow["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mlflow"
    assert s3["ports"] == [{"protocol": "TCP", "port": 8333}]


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"securityProtocol": "SASL_SSL", "tlsSecretName": "ca"}, "saslSecretName"),
        ({"securityProtocol": "SSL"}, "tlsSecretName"),
        ({"securityProtocol": "KERBEROS"}, "securityProtocol"),
        ({"bootstrapServers": "no-port"}, "bootstrapServers"),
    ],
)
def test_bad_kafka_values_are_refused_naming_the_field(kafka, message):
    with pytest.raises(HelmFailed, match=message):
        render_objects({"stream": {"enabled": True, "kafka": kafka}})


def test_kind_kafka_is_the_pinned_official_image_and_the_test_broker_version():
    pinned = versions()
    manifest = list(yaml.safe_load_all((ROOT / "manifests/platform/kafka/kafka.yaml").read_text()))
    (statefulset,) = [d for d in manifest if d["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == pinned["KAFKA_IMAGE"] == f"apache/kafka:{pinned['KAFKA_VERSION']}"
    pom = (ROOT / "tools/kafka/pom.xml").read_text()
    assert re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)[1] == pinned["KAFKA_VERSION"]
    # the scorer's default bootstrap address is this Service
    service = next(d for d in manifest if d["kind"] == "Service" and d["metadata"]["name"] == "kafka")
    address = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    assert values_file("values.yaml")["stream"]["kafka"]["bootstrapServers"] == address
    for doc in manifest:
        assert not validate_object(doc), doc["metadata"]["name"]
