"""Webhook deliveries as MLflow 3.17.2 signs them: authenticated, fresh, new, well-formed, or refused.

Valid signatures are made by MLflow's own ``_generate_hmac_signature`` (mlflow/webhooks/delivery.py)
over a body shaped like ``_send_webhook_request``'s, so these tests fail if our reading of MLflow's
format is wrong, not only if our code changes.
"""

from __future__ import annotations

import json

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from mlstack.serving.rollout_controller.webhook import DeliveryLog, Refused, authenticate, parse_event

SECRET = "a-webhook-secret-of-some-length"
NOW = 1_800_000_000


def delivery(data: dict | None = None, entity: str = "model_version_alias", action: str = "created", **over):
    body = json.dumps(
        {
            "entity": entity,
            "action": action,
            "timestamp": "2027-01-15T08:00:00+00:00",
            "data": data if data is not None else {"name": "fraud", "alias": "challenger", "version": "2"},
        }
    )
    delivery_id = over.pop("delivery_id", "5f0c3d3e-0000-4000-8000-000000000001")
    stamp = str(over.pop("stamp", NOW))
    headers = {
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": _generate_hmac_signature(over.pop("secret", SECRET), delivery_id, stamp, body),
    }
    return headers, body.encode()


def refusal(headers, body, now=NOW, tolerance=300):
    with pytest.raises(Refused) as caught:
        authenticate(SECRET.encode(), headers, body, now, tolerance)
    return caught.value.status, caught.value.rule


def test_a_delivery_signed_by_mlflow_passes():
    headers, body = delivery()
    assert authenticate(SECRET.encode(), headers, body, NOW + 5, 300).delivery_id.startswith("5f0c")
    assert parse_event(body).model == "fraud"


def test_a_wrong_secret_a_changed_body_or_a_changed_id_is_refused():
    headers, body = delivery(secret="someone-elses-secret-123")
    assert refusal(headers, body) == (401, "bad_signature")
    headers, body = delivery()
    assert refusal(headers, body.replace(b"fraud", b"other")) == (401, "bad_signature")
    assert refusal({**headers, "x-mlflow-delivery-id": "another-id"}, body) == (401, "bad_signature")
    # the timestamp is signed too: moving it forward to dodge the window breaks the signature
    assert refusal({**headers, "x-mlflow-timestamp": str(NOW + 1)}, body) == (401, "bad_signature")


@pytest.mark.parametrize("header", ["x-mlflow-delivery-id", "x-mlflow-timestamp", "x-mlflow-signature"])
def test_a_missing_header_is_refused(header):
    headers, body = delivery()
    del headers[header]
    assert refusal(headers, body) == (401, "missing_header")


def test_signatures_that_are_not_v1_base64_do_not_match():
    headers, body = delivery()
    good = headers["x-mlflow-signature"]
    assert refusal({**headers, "x-mlflow-signature": good.replace("v1,", "v2,")}, body)[0] == 401
    assert refusal({**headers, "x-mlflow-signature": "v1,not*base64"}, body)[0] == 401
    # Standard Webhooks allows several space-separated signatures (secret rotation): one match is enough
    assert authenticate(SECRET.encode(), {**headers, "x-mlflow-signature": f"v1,AAAA {good}"}, body, NOW, 300)


def test_a_timestamp_outside_the_window_is_a_replay():
    headers, body = delivery(stamp=NOW - 301)
    assert refusal(headers, body) == (401, "timestamp_outside_window")
    headers, body = delivery(stamp=NOW + 301)
    assert refusal(headers, body) == (401, "timestamp_outside_window")
    headers, body = delivery(stamp=NOW - 300)
    assert authenticate(SECRET.encode(), headers, body, NOW, 300)


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (b"{not json", "body", "not_json"),
        (b"\xff\xfe", "body", "not_json"),
        (b"[1, 2]", "body", "wrong_type"),
        (b'{"action": "created", "data": {"name": "m"}}', "entity", "required"),
        (b'{"entity": "model_version_alias", "data": {"name": "m"}}', "action", "required"),
        (b'{"entity": "model_version_alias", "action": "created", "data": "m"}', "data", "wrong_type"),
        (b'{"entity": "model_version_alias", "action": "created", "data": {}}', "data.name", "required"),
        (
            b'{"entity": "model_version_alias", "action": "created", "data": {"name": 7}}',
            "data.name",
            "required",
        ),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(body, field, rule):
    with pytest.raises(Refused) as caught:
        parse_event(body)
    assert (caught.value.status, caught.value.field, caught.value.rule) == (400, field, rule)
    assert set(caught.value.to_dict()) == {"error", "field", "rule"}


def test_events_that_name_no_served_model_are_read_as_such():
    _, body = delivery({"name": "a-prompt", "alias": "production", "version": "1"}, entity="prompt_alias")
    assert parse_event(body).model is None
    _, body = delivery({"name": "fraud", "alias": "challenger"}, action="deleted")
    event = parse_event(body)
    assert (event.entity, event.action, event.model) == ("model_version_alias", "deleted", "fraud")


def test_delivery_log_refuses_a_duplicate_and_forgets_after_the_window():
    log = DeliveryLog(tolerance_seconds=300, max_entries=1000)
    assert log.first_time("a", now=0)
    assert not log.first_time("a", now=10)
    assert not log.first_time("a", now=600)  # a replay at +600 s still carries a timestamp that may pass
    assert log.first_time("a", now=601)  # by now its signed timestamp is outside the window anyway


def test_delivery_log_memory_is_bounded():
    log = DeliveryLog(tolerance_seconds=300, max_entries=100)
    for i in range(10_000):
        log.first_time(f"id-{i}", now=i / 1000)
    assert len(log) == 100
    assert not log.first_time("id-9999", now=10.0)
