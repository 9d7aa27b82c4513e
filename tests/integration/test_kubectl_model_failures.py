"""``kubectl model`` when the rollout goes wrong, on KServe's and Knative's own controllers.

- A canary whose pods never become Ready (its model cannot be read: the kwok stage in
  tests/fixtures/reconciler_platform.py reports what the kubelet reports when KServe's
  storage-initializer exits 1): ``status`` says so with KServe's own failure report, ``promote``
  refuses, ``rollback`` gives the previous revision 100 % again.
- Refusals by the upstream webhooks come back as one line. KServe v0.20.0's webhook admits any
  ``canaryTrafficPercent`` and any runtime name (pkg/apis/serving/v1beta1/inference_service_validation.go
  checks neither), so an invalid percent sent with a plain ``kubectl patch`` is refused one step
  later, by Knative's webhook when KServe writes the Knative Service, and an unknown runtime is
  reported by KServe's reconciler (RuntimeNotRecognized); a rule KServe's webhook does check
  (minReplicas <= maxReplicas) refuses the patch itself.
"""

from __future__ import annotations

import json

import pytest

from mlstack.core.errors import CheckFailed
from tests.fixtures.reconciler_platform import UNREADABLE_PREFIX

REV = "fraud-predictor-{:05d}".format


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    assert "Traceback" not in text
    return lines[0]


def test_a_canary_that_never_gets_ready_is_reported_refused_and_rolled_back(
    kube_api, mlflow_registry, kubectl_model
):
    ns, reconcilers = kube_api.namespace, kube_api.reconcilers
    # version 4's artifacts cannot be read (deleted from the bucket, say)
    mlflow_registry.create_model_version("fraud", source=f"{UNREADABLE_PREFIX}1/models/m-4/artifacts")
    code, _, err = kubectl_model("canary", "fraud", "--version", "4", "--percent", "20")
    assert code == 0, err
    # Knative keeps the "latest" 20 % on the last Ready revision: v1 still takes everything
    assert reconcilers.route_traffic(ns, "fraud") == {REV(1): 100}
    assert reconcilers.ready_pods_on_kwok(ns, REV(2)) == []

    code, out, err = kubectl_model("status", "fraud")
    assert code == 0, err
    assert out.splitlines()[-1] == (
        f"rolling out: canary revision {REV(2)} is not Ready (ModelLoadFailed, exit code 1); latest Ready: "
        f"{REV(1)}; promote is refused until it is Ready, or: kubectl model rollback fraud"
    )
    code, out, err = kubectl_model("status", "fraud", "-o", "json")
    assert json.loads(out)["rollout"].startswith(f"canary revision {REV(2)} is not Ready")

    code, _, err = kubectl_model("promote", "fraud")
    assert (code, one_line(err)) == (
        1,
        f"error: the canary of 'fraud' is not ready: revision {REV(2)} is not Ready (ModelLoadFailed, "
        f"exit code 1); latest Ready: {REV(1)}; wait, or roll it back",
    )
    assert mlflow_registry.get_registered_model("fraud").aliases == {"champion": 1, "challenger": 4}

    code, out, err = kubectl_model("rollback", "fraud", "--reason", "pods never Ready")
    assert code == 0, err
    obj = kube_api.settle("fraud")
    # the champion's spec restored: a new revision at 0 %, the previous revision at 100 % again
    assert reconcilers.route_traffic(ns, "fraud") == {REV(3): 0, REV(1): 100}
    assert obj["status"]["components"]["predictor"]["latestRolledoutRevision"] == REV(1)
    assert len(reconcilers.ready_pods_on_kwok(ns, REV(1))) == 2
    assert mlflow_registry.get_registered_model("fraud").aliases == {"champion": 1}
    code, out, _ = kubectl_model("status", "fraud", "-o", "json")
    assert json.loads(out)["rollout"] == "up to date"


def test_an_invalid_percent_refused_by_knatives_webhook_comes_back_in_one_line(
    kube_api, mlflow_registry, kubectl_model
):
    ns, reconcilers = kube_api.namespace, kube_api.reconcilers
    assert kubectl_model("canary", "fraud", "--version", "2", "--percent", "20")[0] == 0
    # the README's plain-kubectl recipe with a typo: the API server and KServe's webhook accept it
    kube_api.plane.kubectl(
        "-n",
        ns,
        "patch",
        "inferenceservice",
        "fraud",
        "--type=merge",
        "-p",
        '{"spec":{"predictor":{"canaryTrafficPercent":150}}}',
    )
    kube_api.settle("fraud")
    refusal = (
        "not Ready: ReconcileFailed: fails to reconcile predictor: fails to reconcile knative service: admission "
        'webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: Traffic '
        "targets sum to 150, want 100: spec.traffic; expected 0 <= 150 <= 100: spec.traffic[0].percent"
    )
    code, out, err = kubectl_model("status", "fraud")
    assert code == 0, err
    assert out.splitlines()[-1] == f"rolling out: {refusal}"
    # Knative kept routing what it had
    assert reconcilers.route_traffic(ns, "fraud") == {REV(2): 20, REV(1): 80}

    code, _, err = kubectl_model("promote", "fraud")
    assert code == 1 and one_line(err).startswith("error: 'fraud' is not Ready (ReconcileFailed: fails to")
    assert "Traffic targets sum to 150, want 100" in err

    # the way out: a valid percent
    code, _, err = kubectl_model("canary", "fraud", "--percent", "30")
    assert code == 0, err
    want = {REV(2): 30, REV(1): 70}
    assert reconcilers.wait_for(
        lambda: reconcilers.route_traffic(ns, "fraud") == want, "Knative routes 30/70"
    )
    assert kube_api.settle("fraud")["status"]["components"]["predictor"]["latestReadyRevision"] == REV(2)


def test_a_runtime_kserve_does_not_know_is_reported_in_one_line(kube_api, mlflow_registry, kubectl_model):
    ns = kube_api.namespace
    kube_api.plane.kubectl(
        "-n",
        ns,
        "patch",
        "inferenceservice",
        "fraud",
        "--type=merge",
        "-p",
        '{"spec":{"predictor":{"model":{"runtime":"mlstack-sklaern"}}}}',
    )
    reported = (
        "KServe cannot roll out this spec: RuntimeNotRecognized, Waiting for runtime to become available"
    )

    def status_line():
        code, out, _ = kubectl_model("status", "fraud")
        return out.splitlines()[-1] if code == 0 and out.splitlines()[-1].startswith("rolling out:") else None

    assert kube_api.reconcilers.wait_for(status_line, "kubectl model status reports the runtime") == (
        f"rolling out: {reported}"
    )
    code, _, err = kubectl_model("canary", "fraud", "--version", "2", "--percent", "10")
    assert (code, one_line(err)) == (
        1,
        f"error: 'fraud' is still rolling out: {reported}; wait until it is Ready",
    )


def test_a_patch_kserves_webhook_refuses_is_one_clear_error(kube_api):
    from mlstack.adapters.kube import Kube

    kube = Kube(namespace=kube_api.namespace)
    with pytest.raises(CheckFailed) as refused:
        kube.patch("fraud", {"spec": {"predictor": {"minReplicas": 5}}})  # the chart's template has max 2
    assert one_line(str(refused.value)) == (
        "the API server refused to patch InferenceService 'fraud': admission webhook "
        '"inferenceservice.kserve-webhook-server.validator" denied the request: '
        "'MinReplicas' cannot be greater than MaxReplicas"
    )
