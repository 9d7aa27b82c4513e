"""The rollout controller end to end: a real ``mlflow server`` (SQL backend) sends real webhooks.

The controller runs as its own process (``mlstack rollout controller``) against the API server on
which KServe's and Knative's own controllers reconcile (tests/fixtures/reconcilers.py): its writes
pass KServe's webhooks, and the status it plans from (and the tests read) is the one KServe wrote
from Knative's Revisions and Route. MLflow registers the controller's webhook itself (the
controller does, as leader) and delivers alias events through :class:`WebhookRelay`, which a test
can cut. Times printed here (alias change -> move) are the numbers in docs/rollouts.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.rollouts import ISVC, WebhookRelay, register_webhook


def test_aliases_drive_canary_promotion_and_rollback_through_webhooks(served_model):
    relay = WebhookRelay("")  # the controller's port is known once it exists
    controller = served_model.controller("solo", webhook_url=relay.url)
    relay.target = f"{controller.url}/webhooks/mlflow"
    controller.start()
    try:
        controller.wait_leading()
        assert controller.wait_reconciled()["result"] == "noop"  # champion v1 is served: nothing to do
        # the leader registered itself; the CLI finds that webhook, updates it, and MLflow's test
        # event (a model nobody serves) reaches the controller, which answers 200 "ignored"
        done = register_webhook(served_model, relay.url, "mlstack-rollout-controller")
        assert done.returncode == 0, done.stderr
        assert "webhook 'mlstack-rollout-controller' updated" in done.stdout
        assert "test event delivered: HTTP 200" in done.stdout
        times = {}

        # challenger set -> a canary of v2 at canary.initial_percent (10)
        started = time.monotonic()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        served_model.wait_for(
            lambda: served_model.serving() == ("2", 10), "canary of v2", controller=controller
        )
        times["challenger set -> canary"] = time.monotonic() - started
        obj = served_model.settled()
        times["challenger set -> canary settled by KServe and Knative"] = time.monotonic() - started
        traffic = {
            t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]
        }
        assert traffic == {"fraud-predictor-00001": 90, "fraud-predictor-00002": 10}
        assert obj["spec"]["predictor"]["model"]["storageUri"] == served_model.uri(2)
        served_model.wait_for(
            lambda: (
                served_model.client.get_model_version(served_model.model, "2").tags.get("canary_percent")
                == "10"
            ),
            "the canary_percent tag stream scorers route by",
        )
        # the webhook moved it (resync is an hour away), and MLflow's delivery was accepted
        served_model.wait_for(  # the reconcile is counted once its registry writes and Event are done
            lambda: (
                controller.metric("mlstack_rollout_reconciles_total", trigger="webhook", result="moved") >= 1
            ),
            "the reconcile counted",
        )
        assert controller.metric("mlstack_rollout_reconciles_total", trigger="webhook", result="moved") == 1
        assert any(r.status == 202 for r in relay.records)

        # champion moved onto the canary -> promoted; the controller keeps the registry's bookkeeping
        started = time.monotonic()
        served_model.client.set_registered_model_alias(served_model.model, "champion", "2")
        served_model.wait_for(
            lambda: served_model.serving() == ("2", None), "promotion", controller=controller
        )
        times["champion moved -> promoted"] = time.monotonic() - started
        status = served_model.settled()["status"]["components"]["predictor"]
        times["champion moved -> promotion settled"] = time.monotonic() - started
        assert status["latestRolledoutRevision"] == "fraud-predictor-00002"
        served_model.wait_for(lambda: served_model.aliases() == {"champion": "2", "previous": "1"}, "aliases")

        # a new challenger, then its alias deleted -> rolled back to the champion, v3 tagged rejected
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "3")
        served_model.wait_for(
            lambda: served_model.serving() == ("3", 10), "canary of v3", controller=controller
        )
        started = time.monotonic()
        served_model.client.delete_registered_model_alias(served_model.model, "challenger")
        served_model.wait_for(lambda: served_model.serving() == ("2", 0), "rollback", controller=controller)
        times["challenger deleted -> rolled back"] = time.monotonic() - started
        obj = served_model.settled()
        times["challenger deleted -> rollback settled"] = time.monotonic() - started
        assert obj["spec"]["predictor"]["model"]["storageUri"] == served_model.uri(2)
        traffic = {
            t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]
        }
        assert traffic["fraud-predictor-00002"] == 100
        tags = served_model.client.get_model_version(served_model.model, "3").tags
        assert tags["rejected"] == "rollout controller: no challenger alias in MLflow"

        # every move is an Event on the InferenceService and a metric
        served_model.wait_for(lambda: len(served_model.events()) >= 4, "4 Events")
        reasons = [e["reason"] for e in sorted(served_model.events(), key=lambda e: e["eventTime"])]
        assert reasons == ["CanaryStarted", "Promoted", "CanaryStarted", "RolledBack"]
        assert [e["reportingInstance"] for e in served_model.events()] == ["solo"] * 4
        assert controller.metric("mlstack_rollout_moves_total", inference_service=ISVC) == 4
        assert controller.metric("mlstack_rollout_reconciles_total", trigger="resync", result="moved") == 0
        print("\nwebhook-driven moves:", {k: f"{v:.2f} s" for k, v in times.items()})
    finally:
        controller.stop()
        relay.cut()


def test_periodic_reconcile_converges_when_webhooks_are_lost(served_model):
    """The receiver is unreachable during the alias change: MLflow gives up, the resync still moves."""
    from tests.fixtures.mlflow_server import mlflow_server_log

    resync = 10.0
    relay = WebhookRelay("")
    controller = served_model.controller("resync", webhook_url=relay.url, resync_seconds=resync)
    relay.target = f"{controller.url}/webhooks/mlflow"
    controller.start()
    try:
        controller.wait_leading()
        controller.wait_reconciled()
        server_log = mlflow_server_log[served_model.tracking_uri]
        failures_before = server_log.read_text(errors="replace").count(relay.url)
        relay.cut()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        waited = served_model.wait_for(
            lambda: served_model.serving() == ("2", 10),
            "canary by resync",
            timeout=3 * resync,
            controller=controller,
        )
        served_model.wait_for(  # the reconcile is counted once its registry writes and Event are done
            lambda: (
                controller.metric("mlstack_rollout_reconciles_total", trigger="resync", result="moved") >= 1
            ),
            "the reconcile counted",
        )
        assert controller.metric("mlstack_rollout_reconciles_total", trigger="resync", result="moved") == 1
        assert controller.metric("mlstack_rollout_webhook_deliveries_total", result="accepted") == 0
        # MLflow really tried and gave up (delivery.py logs the failure once its retries are spent)
        deadline = time.monotonic() + 30
        while server_log.read_text(errors="replace").count(relay.url) == failures_before:
            assert time.monotonic() < deadline, "MLflow logged no failed delivery to the cut relay"
            time.sleep(0.5)
        print(
            f"\nno webhook: alias change -> canary by the periodic reconcile in {waited:.1f} s (resync every {resync:.0f} s)"
        )
        failure = [line for line in server_log.read_text(errors="replace").splitlines() if relay.url in line]
        print("MLflow's log:", failure[-1][:240])
        assert waited <= resync + 5
    finally:
        controller.stop()
        relay.cut()


def test_kubectl_model_moves_and_the_controller_converge_without_fighting(served_model):
    """kubectl model moves the service first and the aliases a moment later; the controller waits."""
    from tests.fixtures.canary import run_plugin

    controller = served_model.controller("loop", resync_seconds=0.5, grace_seconds=8)
    controller.start()
    env = {
        "KUBECONFIG": str(served_model.kubeconfig),
        "MLSTACK_TRACKING_URI": served_model.tracking_uri,
        "MLSTACK_HOME": str(served_model.tmp / "home-plugin"),
    }
    try:
        controller.wait_leading()
        controller.wait_reconciled()
        done = run_plugin("canary", ISVC, "--version", "2", "--percent", "20", env=env)
        assert done.returncode == 0, done.stderr
        served_model.settled()  # as a user waits: promote refuses a canary KServe has not made Ready
        done = run_plugin("promote", ISVC, env=env)
        assert done.returncode == 0, done.stderr
        assert served_model.aliases() == {"champion": "2", "previous": "1"}
        time.sleep(3)  # six full reconciles
        assert served_model.serving() == ("2", None)
        assert (
            served_model.settled()["status"]["components"]["predictor"]["latestCreatedRevision"]
            == "fraud-predictor-00002"
        )
        assert controller.metric("mlstack_rollout_moves_total") == 0
        status = run_plugin("status", ISVC, "-o", "json", env=env)
        assert json.loads(status.stdout)["controller"] == "active", status.stderr

        # the cluster half of a move without its registry half: within the grace the controller waits,
        # then the registry (champion v2, no challenger) wins and the canary is rolled back
        from mlstack.core.rollout import start_canary_patch

        patch = start_canary_patch(
            served_model.obj(), "3", served_model.uri(3), 30
        )  # what kubectl model sends
        served_model.plane.kubectl(
            "-n",
            served_model.namespace,
            "patch",
            "inferenceservice",
            ISVC,
            "--type=merge",
            "--field-manager=kubectl-model",
            "-p",
            json.dumps(patch),
        )
        patched = time.monotonic()
        served_model.wait_for(
            lambda: controller.status()["inference_services"][ISVC]["result"] == "wait", "wait"
        )
        assert (
            "another client changed the service" in controller.status()["inference_services"][ISVC]["reason"]
        )
        assert served_model.serving() == ("3", 30)
        served_model.wait_for(
            lambda: served_model.serving() == ("2", 0), "registry wins", timeout=30, controller=controller
        )
        assert time.monotonic() - patched >= 8 - 1
        # `mlstack rollout plan` reads the same two sources and agrees: nothing left to do
        planned = subprocess.run(
            [str(Path(sys.executable).parent / "mlstack"), "rollout", "plan", ISVC, "--json"],
            env={**served_model.controller("plan").env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert planned.returncode == 0, planned.stderr
        assert json.loads(planned.stdout)["action"] == "noop", planned.stdout
    finally:
        controller.stop()


def test_a_version_kserve_cannot_fetch_is_a_warning_event_not_a_silent_wait(served_model):
    """Without the artifacts-destination annotation the proxied location has no fetchable form."""
    served_model.plane.kubectl(
        "-n",
        served_model.namespace,
        "annotate",
        "inferenceservice",
        ISVC,
        "serving.mlstack.io/artifacts-destination-",
    )
    controller = served_model.controller("unfetchable", resync_seconds=1)  # no webhook here
    controller.start()
    try:
        controller.wait_leading()
        controller.wait_reconciled()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        served_model.wait_for(
            lambda: controller.metric("mlstack_rollout_reconciles_total", result="error") >= 1,
            "the failed reconcile",
            controller=controller,
        )
        warnings = served_model.wait_for_events("ReconcileFailed")
        assert warnings[0]["type"] == "Warning"
        assert "no artifacts destination is known" in warnings[0]["note"]
        assert served_model.serving() == ("1", None)
        assert (
            "no artifacts destination is known" in controller.status()["inference_services"][ISVC]["reason"]
        )
    finally:
        controller.stop()
