"""The Ingress status stand-in writes what net-kourier writes at the pinned version (read from its module)."""

from __future__ import annotations

import re

from tests.fixtures.ingress_standin import GATEWAY_NAMESPACE, KOURIER_CLASS, kourier_status
from tests.fixtures.upstream import KOURIER, module_dir, parse


def test_the_names_are_net_kouriers():
    config = (module_dir(KOURIER) / "pkg" / "reconciler" / "ingress" / "config" / "config.go").read_text()
    assert re.search(r'ExternalServiceName = "kourier"\n', config)
    assert re.search(r'InternalServiceName = "kourier-internal"\n', config)
    assert f'KourierIngressClassName = "{KOURIER_CLASS}"' in config
    assert re.search(r'GatewayNamespaceEnv = "KOURIER_GATEWAY_NAMESPACE"', config)
    controller = next(
        o
        for o in parse((module_dir(KOURIER) / "config" / "300-controller.yaml").read_text())
        if o["kind"] == "Deployment"
    )
    env = {e["name"]: e.get("value") for e in controller["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KOURIER_GATEWAY_NAMESPACE"] == GATEWAY_NAMESPACE


def test_the_status_is_the_one_reconcile_kind_marks():
    reconciler = (module_dir(KOURIER) / "pkg" / "reconciler" / "ingress" / "ingress.go").read_text()
    assert "ing.Status.MarkNetworkConfigured()" in reconciler
    assert "external, internal := config.ServiceHostnames()" in reconciler
    assert "[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: external}}," in reconciler
    assert "[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: internal}}," in reconciler
    status = kourier_status({"metadata": {"generation": 3}}, "2026-01-01T00:00:00Z")
    assert status["observedGeneration"] == 3
    assert status["publicLoadBalancer"] == {
        "ingress": [{"domainInternal": "kourier.kourier-system.svc.cluster.local"}]
    }
    assert status["privateLoadBalancer"] == {
        "ingress": [{"domainInternal": "kourier-internal.kourier-system.svc.cluster.local"}]
    }
    assert {c["type"] for c in status["conditions"]} == {"Ready", "NetworkConfigured", "LoadBalancerReady"}
