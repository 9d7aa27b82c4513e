"""Two controller replicas on one Lease: only the holder acts; a dead holder is replaced, a stopped one steps down."""

from __future__ import annotations

import time

from tests.fixtures.rollouts import WebhookRelay, register_webhook


def test_two_replicas_only_the_lease_holder_acts(served_model):
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
        spec = served_model.plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")[
            "spec"
        ]
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
            return {e["reason"]: e["reportingInstance"] for e in served_model.events()}

        served_model.wait_for(lambda: "Promoted" in instances(), "the Promoted event")
        assert instances() == {"CanaryStarted": "replica-a", "Promoted": "replica-b"}
        spec = served_model.plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")[
            "spec"
        ]
        assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1
        assert failover >= lease["lease_seconds"] - 1  # b waited out a's lease, measured on its own clock
        print(f"\nfailover after SIGKILL of the leader: {failover:.1f} s (lease {lease['lease_seconds']} s)")

        # a graceful stop releases the Lease at once
        b.stop()
        spec = served_model.plane.get("-n", served_model.namespace, "lease", "mlstack-rollout-controller")[
            "spec"
        ]
        assert "holderIdentity" not in spec and spec["leaseDurationSeconds"] == 1
    finally:
        for replica in replicas.values():
            replica.stop()
        for relay in relays.values():
            relay.cut()
