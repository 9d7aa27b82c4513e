"""Deliveries that must change nothing: forged, tampered, unsigned, replayed, duplicated, malformed.

A real MLflow delivery is captured by the relay (tests/fixtures/rollouts.py) and replayed byte for
byte; other deliveries are signed with MLflow 3.17.2's own ``_generate_hmac_signature``. The
registry is changed while MLflow cannot reach the controller, so any delivery the controller
accepted would start a canary: the last one, fresh and signed, does.
"""

from __future__ import annotations

import time

import httpx

from tests.fixtures.rollouts import SECRET, WebhookRelay


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
        # the leader registers its webhook before its first reconcile, so no alias change falls
        # between the two (one would wait for the next resync, an hour away here)
        assert controller.status()["webhook_registered"], controller.log_tail()
        # one real delivery from MLflow while cluster and registry agree (its reconcile is a no-op)
        served_model.client.set_registered_model_alias(served_model.model, "staging", "1")
        served_model.wait_for(lambda: any(r.status == 202 for r in relay.records), "a real delivery")
        real = next(r for r in relay.records if r.status == 202)
        served_model.wait_for(  # its reconcile is done (and counted) before the counting below starts
            lambda: controller.metric("mlstack_rollout_reconciles_total", trigger="webhook") >= 1,
            "a reconcile",
        )
        # then the registry changes while MLflow cannot reach the controller: only a delivery we
        # accept now (or the resync, an hour away) would start the canary of v2
        relay.cut()
        served_model.client.set_registered_model_alias(served_model.model, "challenger", "2")
        accepted = controller.metric("mlstack_rollout_reconciles_total", trigger="webhook")

        duplicate = httpx.post(hook, content=real.body, headers=real.headers)
        assert (duplicate.status_code, duplicate.json().get("status")) == (200, "duplicate")

        forged = {
            **real.headers,
            **_signed(real.body, "forged-1", int(time.time()), secret="not-the-secret-0123"),
        }
        answer = httpx.post(hook, content=real.body, headers=forged)
        assert (answer.status_code, answer.json().get("rule")) == (401, "bad_signature")
        tampered = real.body.replace(served_model.model.encode(), b"another-model")
        answer = httpx.post(hook, content=tampered, headers=real.headers)
        assert (answer.status_code, answer.json().get("rule")) == (401, "bad_signature")
        unsigned = {k: v for k, v in real.headers.items() if k != "x-mlflow-signature"}
        answer = httpx.post(hook, content=real.body, headers=unsigned)
        assert (answer.status_code, answer.json().get("rule")) == (401, "missing_header")

        for body, rule in (
            (b"{not json", "not_json"),
            (b'{"entity": "model_version_alias", "action": "created", "data": {}}', "required"),
        ):
            answer = httpx.post(hook, content=body, headers=_signed(body, f"bad-{rule}", int(time.time())))
            assert (answer.status_code, answer.json().get("rule")) == (400, rule)

        # MLflow's real delivery replayed once its timestamp is out of the window
        time.sleep(max(0.0, int(real.headers["x-mlflow-timestamp"]) + tolerance + 1.5 - time.time()))
        answer = httpx.post(hook, content=real.body, headers=real.headers)
        assert (answer.status_code, answer.json().get("rule")) == (401, "timestamp_outside_window")
        # an old delivery signed anew under a new id is still old
        old = _signed(real.body, "replayed-2", int(time.time()) - 3600)
        answer = httpx.post(hook, content=real.body, headers=old)
        assert (answer.status_code, answer.json().get("rule")) == (401, "timestamp_outside_window")

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
