"""`make platform` waits for each admission webhook before the strict apply of what it validates.

Knative's config webhook (``config.webhook.serving.knative.dev``, service ``knative-serving/webhook``)
validates the ConfigMaps the knative-serving kustomization patches; its rules are written by the
webhook at run time (knative.dev/pkg webhook/configmaps/configmaps.go ``reconcileValidatingWebhook``),
so the release file names only the service. KServe's webhooks validate the ClusterServingRuntimes and
LLMInferenceServiceConfigs of kserve-cluster-resources (``config/webhook/manifests.yaml`` and
``config/webhook/llmisvc/manifests.yaml`` @ v0.20.0). A wait for a service no webhook names would
burn its whole deadline on a cluster, so the names are checked against the upstream release content.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.fixtures.cluster import ROOT

pytestmark = pytest.mark.timeout(900)  # renders the upstream release content from Go modules


def _platform_commands() -> list[str]:
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "platform", "KUBECTL=kubectl", "HELM=helm"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    return [line.strip() for line in dry.stdout.splitlines() if line.strip() and not line.startswith("#")]


def _waits(commands: list[str]) -> list[tuple[int, str, str, int]]:
    found = []
    for index, command in enumerate(commands):
        if match := re.match(r"manifests/scripts/wait-webhook\.sh (\S+) (\S+) (\d+) kubectl$", command):
            found.append((index, match.group(1), match.group(2), int(match.group(3))))
    return found


def _strict_apply(commands: list[str], kustomization: str) -> int:
    """The index of the last apply of ``kustomization``; it must not swallow its failure."""
    applies = [i for i, c in enumerate(commands) if re.search(rf"apply .*-k \S*/{kustomization}$", c)]
    assert applies, f"no apply of {kustomization} in make platform"
    return applies[-1]


@pytest.mark.parametrize(
    ("kustomization", "services"),
    [
        ("knative-serving", {("knative-serving", "webhook")}),
        (
            "kserve-cluster-resources",
            {("kserve", "kserve-webhook-server-service"), ("kserve", "llmisvc-webhook-server-service")},
        ),
    ],
)
def test_the_strict_apply_comes_after_a_bounded_wait_for_its_webhooks(kustomization, services):
    commands = _platform_commands()
    strict = _strict_apply(commands, kustomization)
    assert commands[strict].startswith("manifests/scripts/retry.sh 3 10 "), commands[strict]
    waited = {
        (ns, svc) for index, ns, svc, deadline in _waits(commands) if index < strict and deadline >= 300
    }
    assert services <= waited, f"{kustomization}: applied before waiting for {services - waited}"
    # the wait follows the first pass (Knative) or the controllers' rollout (KServe)
    before = [c for c in commands[:strict] if "knative-serving" in c or "-n kserve" in c]
    assert before, commands[:strict]


def test_every_waited_service_is_one_an_upstream_webhook_calls():
    from tests.fixtures.upstream import release_objects

    called = {
        (hook["clientConfig"]["service"]["namespace"], hook["clientConfig"]["service"]["name"])
        for component in ("knative-serving", "kserve")
        for obj in release_objects(component)
        if obj["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        for hook in obj["webhooks"]
        if hook["clientConfig"].get("service")
    }
    waited = {(ns, svc) for _, ns, svc, _ in _waits(_platform_commands())}
    assert waited and waited <= called, waited - called


def test_kserve_cluster_resources_are_validated_only_by_the_waited_services():
    from tests.fixtures.upstream import release_objects

    kinds = {o["kind"] for o in release_objects("kserve-cluster-resources")}
    plurals = {kind.lower() + "s" for kind in kinds}
    validating = {
        hook["clientConfig"]["service"]["name"]
        for obj in release_objects("kserve")
        if obj["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        for hook in obj["webhooks"]
        if any(set(rule.get("resources", [])) & plurals for rule in hook.get("rules", []))
    }
    waited = {svc for _, ns, svc, _ in _waits(_platform_commands()) if ns == "kserve"}
    assert validating and validating <= waited, validating - waited
