"""`make platform` waits for a webhook to serve before applying what it validates, or stops saying why.

``manifests/scripts/wait-webhook.sh`` against the session's real kube-apiserver: the webhook
configuration, the Service and its EndpointSlice are real API objects the script reads with the
built kubectl. What only a cluster has (the webhook's pod becoming Ready, its own caBundle write)
is played by the test writing the same fields: ``caBundle`` on the configuration (Knative's webhook
writes it itself: knative.dev/pkg webhook/configmaps/configmaps.go ``reconcileValidatingWebhook``),
and a ready endpoint (what the endpoint-slice controller writes once the pod passes its probe).
"""

from __future__ import annotations

import base64
import subprocess
import time

import pytest

from tests.fixtures.kube_tools import ROOT, tool

SCRIPT = ROOT / "manifests" / "scripts" / "wait-webhook.sh"
SERVICE = "webhook"


def _run(plane, namespace: str, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPT), namespace, SERVICE, str(timeout), str(tool("kubectl"))],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env=plane.env(),
    )
    return proc, time.monotonic() - started


@pytest.fixture
def webhook_config(control_plane, namespace):
    """A ValidatingWebhookConfiguration naming ``<namespace>/webhook`` that never matches an object."""
    name = f"probe.{namespace}.mlstack.test"
    control_plane.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": name,
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Ignore",
                    "clientConfig": {"service": {"namespace": namespace, "name": SERVICE}},
                    # a label nothing carries: the shared API server never calls it
                    "objectSelector": {"matchLabels": {"mlstack.test/never": namespace}},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                }
            ],
        }
    )
    control_plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": namespace},
            "spec": {"ports": [{"port": 443, "targetPort": 8443}]},  # no selector: the slice is ours
        }
    )
    yield name
    control_plane.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


def test_stops_at_the_deadline_saying_what_is_missing_then_returns_once_it_serves(
    control_plane, namespace, webhook_config
):
    proc, took = _run(control_plane, namespace, 4)
    assert proc.returncode == 1
    assert f"did not serve within 4s: a webhook naming {namespace}/{SERVICE} has no caBundle" in proc.stderr
    assert took < 30  # the deadline holds (kubectl calls included), no 15 s x N retry loop

    bundle = base64.b64encode(control_plane.pki.ca_cert.read_bytes()).decode()
    control_plane.kubectl(
        "patch",
        "validatingwebhookconfiguration",
        webhook_config,
        "--type=json",
        "-p",
        f'[{{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "{bundle}"}}]',
    )
    proc, _ = _run(control_plane, namespace, 2)
    assert proc.returncode == 1 and "has no ready endpoint" in proc.stderr, proc.stderr

    control_plane.apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-ready",
                "namespace": namespace,
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "tests.mlstack",
                },
            },
            "addressType": "IPv4",
            "ports": [{"port": 8443, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}],
        }
    )
    proc, _ = _run(control_plane, namespace, 30)
    assert proc.returncode == 0, proc.stderr
    assert f"webhook {namespace}/{SERVICE} serves" in proc.stdout


def test_a_namespace_without_the_webhook_waits_then_fails(control_plane, namespace):
    proc, _ = _run(control_plane, namespace, 2)
    assert proc.returncode == 1
    assert f"no webhook configuration names {namespace}/{SERVICE} yet" in proc.stderr
