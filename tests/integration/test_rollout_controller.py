"""The rollout controller end to end: a real ``mlflow server`` (SQL backend) sends real webhooks.

The controller runs as its own process (``mlstack rollout controller``) against the session's real
API server holding KServe's InferenceService CRD; KServe's controller is played by the status
stand-in (tests/fixtures/kserve_api.py). MLflow registers the controller's webhook itself (the
controller does, as leader) and delivers alias events through :class:`WebhookRelay`, which a test
can cut. Times printed here (alias change -> move) are the numbers in docs/rollouts.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.rollouts import ISVC, SECRET, WebhookRelay


def register_webhook(served_model, url: str, name: str, *args: str) -> subprocess.CompletedProcess:
    """``mlstack rollout register-webhook`` as a user runs it."""
    env = served_model.controller(name).env
    env["MLSTACK_ROLLOUT__WEBHOOK_NAME"] = name
    binary = Path(sys.executable).parent / "mlstack"
    return subprocess.run(
        [str(binary), "rollout", "register-webhook", "--url", url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def events_of(control_plane, namespace: str) -> list[dict]:
    items = control_plane.get("-n", namespace, "events.v1.events.k8s.io")["items"]
    return [e for e in items if (e.get("regarding") or {}).get("name") == ISVC]


def test_aliases_drive_canary_promotion_and_rollback_through_webhooks(served_model, control_plane):
    relay = WebhookRelay("")  # the controller's port is known once it exists
    controller = served_model.controller("solo", webhook_url=relay.url)
    relay.target = f"{controller.url}/webhooks/mlflow"
    controller.start()
    try:
        controller.wait_leading()
        assert controller.wait_reconciled()["result"] == "noop"  # champion v1 is served: nothing to do
        times = {}

        # challenger set -> a canary of v2 at canary.initial_percent (10)
        started = time.monotonic()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        served_model.wait_for(
            lambda: served_model.serving() == ("2", 10), "canary of v2", controller=controller
        )
        times["challenger set -> canary"] = time.monotonic() - started
        obj = served_model.obj()
        traffic = {
            t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]
        }
        assert traffic == {"fraud-predictor-00001": 90, "fraud-predictor-00002": 10}
        assert obj["spec"]["predictor"]["model"]["storageUri"] == served_model.uri(2)
        # the webhook moved it (resync is an hour away), and MLflow's delivery was accepted
        assert controller.metric("mlstack_rollout_reconciles_total", trigger="webhook", result="moved") == 1
        assert any(r.status == 202 for r in relay.records)

        # champion moved onto the canary -> promoted; the controller keeps the registry's bookkeeping
        started = time.monotonic()
        served_model.client.set_registered_model_alias(served_model.model, "champion", "2")
        served_model.wait_for(
            lambda: served_model.serving() == ("2", None), "promotion", controller=controller
        )
        times["champion moved -> promoted"] = time.monotonic() - started
        status = served_model.obj()["status"]["components"]["predictor"]
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
        obj = served_model.obj()
        assert obj["spec"]["predictor"]["model"]["storageUri"] == served_model.uri(2)
        traffic = {
            t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]
        }
        assert traffic["fraud-predictor-00002"] == 100
        tags = served_model.client.get_model_version(served_model.model, "3").tags
        assert tags["rejected"] == "rollout controller: no challenger alias in MLflow"

        # every move is an Event on the InferenceService and a metric
        served_model.wait_for(lambda: len(events_of(control_plane, served_model.namespace)) >= 4, "4 Events")
        reasons = [
            e["reason"]
            for e in sorted(events_of(control_plane, served_model.namespace), key=lambda e: e["eventTime"])
        ]
        assert reasons == ["CanaryStarted", "Promoted", "CanaryStarted", "RolledBack"]
        assert all(
            e["reportingController"] == "serving.mlstack.io/rollout-controller"
            and e["reportingInstance"] == "solo"
            for e in events_of(control_plane, served_model.namespace)
        )
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


def _signed(body: bytes, delivery_id: str, stamp: int, secret: str = SECRET) -> dict[str, str]:
    """Headers as MLflow 3.17.2 signs them (its own function, mlflow/webhooks/delivery.py)."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    return {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": str(stamp),
        "x-mlflow-signature": _generate_hmac_signature(secret, delivery_id, str(stamp), body.decode()),
    }


def test_forged_replayed_duplicated_and_malformed_deliveries_change_nothing(served_model):
    tolerance = 8
    relay = WebhookRelay("")
    controller = served_model.controller(
        "hostile", webhook_url=relay.url, webhook_tolerance_seconds=tolerance
    )
    relay.target = hook = f"{controller.url}/webhooks/mlflow"
    controller.start()
    try:
        controller.wait_leading()
        controller.wait_reconciled()
        # one real delivery from MLflow while cluster and registry agree (its reconcile is a no-op)
        served_model.client.set_registered_model_alias(served_model.model, "staging", "1")
        served_model.wait_for(lambda: any(r.status == 202 for r in relay.records), "a real delivery")
        real = next(r for r in relay.records if r.status == 202)
        # then the registry changes while MLflow cannot reach the controller: only a delivery we
        # accept now (or the resync, an hour away) would start the canary of v2
        relay.cut()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        accepted = controller.metric("mlstack_rollout_reconciles_total", trigger="webhook")

        duplicate = httpx.post(hook, content=real.body, headers=real.headers)
        assert (duplicate.status_code, duplicate.json()["status"]) == (200, "duplicate")

        forged = {
            **real.headers,
            **_signed(real.body, "forged-1", int(time.time()), secret="not-the-secret-0123"),
        }
        answer = httpx.post(hook, content=real.body, headers=forged)
        assert (answer.status_code, answer.json()["rule"]) == (401, "bad_signature")
        tampered = real.body.replace(served_model.model.encode(), b"another-model")
        answer = httpx.post(hook, content=tampered, headers=real.headers)
        assert (answer.status_code, answer.json()["rule"]) == (401, "bad_signature")
        unsigned = {k: v for k, v in real.headers.items() if k != "x-mlflow-signature"}
        answer = httpx.post(hook, content=real.body, headers=unsigned)
        assert (answer.status_code, answer.json()["rule"]) == (401, "missing_header")

        for body, rule in (
            (b"{not json", "not_json"),
            (b'{"entity": "model_version_alias", "action": "created", "data": {}}', "required"),
        ):
            answer = httpx.post(hook, content=body, headers=_signed(body, f"bad-{rule}", int(time.time())))
            assert (answer.status_code, answer.json()["rule"]) == (400, rule)

        # MLflow's real delivery replayed once its timestamp is out of the window
        time.sleep(max(0.0, int(real.headers["x-mlflow-timestamp"]) + tolerance + 1.5 - time.time()))
        answer = httpx.post(hook, content=real.body, headers=real.headers)
        assert (answer.status_code, answer.json()["rule"]) == (401, "timestamp_outside_window")
        # an old delivery signed anew under a new id is still old
        old = _signed(real.body, "replayed-2", int(time.time()) - 3600)
        answer = httpx.post(hook, content=real.body, headers=old)
        assert (answer.status_code, answer.json()["rule"]) == (401, "timestamp_outside_window")

        time.sleep(2)  # retry_seconds is 1: anything queued would have been reconciled by now
        assert served_model.serving() == ("1", None)
        assert controller.metric("mlstack_rollout_reconciles_total", trigger="webhook") == accepted
        assert controller.metric("mlstack_rollout_moves_total") == 0

        # the same setup does move on a delivery that passes: the refusals above were what held it
        fresh = httpx.post(hook, content=real.body, headers=_signed(real.body, "fresh-3", int(time.time())))
        assert fresh.status_code == 202, fresh.text
        served_model.wait_for(
            lambda: served_model.serving() == ("2", 10), "canary of v2", controller=controller
        )
    finally:
        controller.stop()
        relay.cut()


def test_two_replicas_only_the_lease_holder_acts(served_model, control_plane):
    lease = {"lease_seconds": 4, "renew_deadline_seconds": 3, "lease_retry_seconds": 1}
    relays, replicas = {}, {}
    for name in ("replica-a", "replica-b"):
        relays[name] = WebhookRelay("")
        # each replica registers its own webhook, so MLflow delivers every event to both
        replicas[name] = served_model.controller(
            name, webhook_url=relays[name].url, webhook_name=name, **lease
        )
        relays[name].target = f"{replicas[name].url}/webhooks/mlflow"
    a, b = replicas["replica-a"], replicas["replica-b"]
    a.start()
    try:
        a.wait_leading()
        b.start()
        deadline = time.monotonic() + 30
        while not b.status()["webhook_registered"] and not b.status()["holder"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (b.status()["leader"], b.status()["holder"]) == (False, "replica-a")
        # only a leader registers its webhook: b's is registered by hand (the CLI; b would answer
        # MLflow's test event with 503, hence --no-test)
        done = register_webhook(served_model, relays["replica-b"].url, "replica-b", "--no-test")
        assert done.returncode == 0, done.stderr
        assert "webhook 'replica-b' created" in done.stdout
        spec = control_plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")["spec"]
        assert spec["holderIdentity"] == "replica-a"

        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        served_model.wait_for(lambda: served_model.serving() == ("2", 10), "canary of v2", controller=a)
        # MLflow delivered to both; the follower answered 503 (MLflow retries 503) and moved nothing
        served_model.wait_for(
            lambda: b.metric("mlstack_rollout_webhook_deliveries_total", result="not_leader") >= 1, "503 at b"
        )
        time.sleep(2)
        assert (
            b.metric("mlstack_rollout_moves_total") == 0 and b.metric("mlstack_rollout_reconciles_total") == 0
        )
        assert a.metric("mlstack_rollout_moves_total") == 1
        assert b.metric("mlstack_rollout_leader") == 0 and a.metric("mlstack_rollout_leader") == 1

        # the leader dies without releasing: the follower takes over once the lease ran out, then acts
        a.stop(kill=True)
        killed = time.monotonic()
        b.wait_leading(timeout=30)
        failover = time.monotonic() - killed
        served_model.client.set_registered_model_alias(served_model.model, "champion", "2")
        served_model.wait_for(lambda: served_model.serving() == ("2", None), "promotion by b", controller=b)

        def instances():
            return {
                e["reason"]: e["reportingInstance"] for e in events_of(control_plane, served_model.namespace)
            }

        served_model.wait_for(lambda: "Promoted" in instances(), "the Promoted event")
        assert instances() == {"CanaryStarted": "replica-a", "Promoted": "replica-b"}
        spec = control_plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")["spec"]
        assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1
        assert failover >= lease["lease_seconds"] - 1  # b waited out a's lease, measured on its own clock
        print(f"\nfailover after SIGKILL of the leader: {failover:.1f} s (lease {lease['lease_seconds']} s)")

        # a graceful stop releases the Lease at once
        b.stop()
        spec = control_plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")["spec"]
        assert "holderIdentity" not in spec and spec["leaseDurationSeconds"] == 1
    finally:
        for replica in replicas.values():
            replica.stop()
        for relay in relays.values():
            relay.cut()


def test_kubectl_model_moves_and_the_controller_converge_without_fighting(served_model, control_plane):
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
        done = run_plugin("promote", ISVC, env=env)
        assert done.returncode == 0, done.stderr
        assert served_model.aliases() == {"champion": "2", "previous": "1"}
        time.sleep(3)  # six full reconciles
        assert served_model.serving() == ("2", None)
        assert (
            served_model.obj()["status"]["components"]["predictor"]["latestCreatedRevision"]
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
        control_plane.kubectl(
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
    finally:
        controller.stop()
