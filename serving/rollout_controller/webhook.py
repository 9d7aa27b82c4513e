"""MLflow webhook deliveries: authenticate, refuse replays and duplicates, read which model changed.

The delivery format, read in MLflow 3.17.2 (site-packages/mlflow/webhooks/):

- ``delivery.py`` ``_send_webhook_request``: a POST whose body is
  ``json.dumps({"entity", "action", "timestamp", "data"})`` with headers ``X-MLflow-Delivery-Id``
  (a uuid4), ``X-MLflow-Timestamp`` (Unix seconds, ``str(int(time.time()))``) and, when the webhook
  has a secret, ``X-MLflow-Signature`` (names in ``constants.py``);
- ``delivery.py`` ``_generate_hmac_signature``: ``"v1," + base64(HMAC-SHA256(secret,
  f"{delivery_id}.{timestamp}.{payload}"))``, the Standard Webhooks scheme; MLflow itself enforces no
  replay window, so this side does;
- ``types.py``: ``model_version_alias.created`` carries ``data: {name, alias, version}``,
  ``model_version_alias.deleted`` ``data: {name, alias}``.

A delivery is only a hint: the controller reads the registry's current aliases before it moves
anything, so even a replay that got through could only make it look again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlstack.serving.http_errors import refusal

DELIVERY_ID_HEADER = "x-mlflow-delivery-id"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
SIGNATURE_HEADER = "x-mlflow-signature"
SIGNATURE_VERSION = "v1"
MAX_ID_LENGTH = 128
# registry entities whose events name a registered model in data.name (types.py); prompts are not served
MODEL_ENTITIES = ("model_version_alias", "registered_model", "model_version", "model_version_tag")


class Refused(Exception):
    """A delivery that is answered with ``status`` and the JSON error shape, and changes nothing."""

    def __init__(self, status: int, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.rule, self.message = status, field, rule, message

    def to_dict(self) -> dict[str, Any]:
        return refusal(self.field, self.rule, self.message)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """An authenticated, fresh delivery."""

    delivery_id: str
    timestamp: int


@dataclass(frozen=True, kw_only=True)
class RegistryEvent:
    """What a delivery says changed: ``entity.action`` of registered model ``model``."""

    entity: str
    action: str
    model: str | None  # None for events that name no served model (prompts)


def _signatures(header: str) -> list[bytes]:
    """The ``v1`` signatures of a header (space-separated, as Standard Webhooks allows for rotation)."""
    found = []
    for part in header.split():
        version, _, encoded = part.partition(",")
        if version != SIGNATURE_VERSION or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def authenticate(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float, tolerance_seconds: float
) -> Delivery:
    """Check the signature (constant time), then the timestamp window; raise :class:`Refused` (401).

    The signature comes first: a timestamp or id is only believed once it is known to be signed.
    """
    delivery_id = headers.get(DELIVERY_ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    for name, value in (
        (DELIVERY_ID_HEADER, delivery_id),
        (TIMESTAMP_HEADER, stamp),
        (SIGNATURE_HEADER, signature),
    ):
        if not value:
            raise Refused(401, name, "missing_header", f"missing {name} header: not a signed MLflow delivery")
    if len(delivery_id) > MAX_ID_LENGTH or not delivery_id.isprintable():
        raise Refused(401, DELIVERY_ID_HEADER, "malformed_header", "the delivery id is not a printable id")
    expected = hmac.new(secret, f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    # compare_digest on every candidate: the time taken does not depend on where bytes differ
    matches = [hmac.compare_digest(expected, candidate) for candidate in _signatures(signature)]
    if not any(matches):
        raise Refused(401, SIGNATURE_HEADER, "bad_signature", "the signature does not match this body")
    if not stamp.isdigit():
        raise Refused(401, TIMESTAMP_HEADER, "malformed_header", "the timestamp is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_seconds:
        raise Refused(
            401,
            TIMESTAMP_HEADER,
            "timestamp_outside_window",
            f"the delivery was signed {now - timestamp:+.0f} s from now, outside ±{tolerance_seconds:.0f} s "
            "(a replay, or a clock that is off)",
        )
    return Delivery(delivery_id=delivery_id, timestamp=timestamp)


def parse_event(body: bytes) -> RegistryEvent:
    """The entity, action and model name of a delivery body; raise :class:`Refused` (400) if malformed."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, "body", "not_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise Refused(400, "body", "wrong_type", "the body must be a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not entity:
        raise Refused(400, "entity", "required", "entity must be a non-empty string")
    if not isinstance(action, str) or not action:
        raise Refused(400, "action", "required", "action must be a non-empty string")
    if not isinstance(data, dict):
        raise Refused(400, "data", "wrong_type", "data must be a JSON object")
    if entity not in MODEL_ENTITIES:
        return RegistryEvent(entity=entity, action=action, model=None)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise Refused(400, "data.name", "required", "data.name must name a registered model")
    return RegistryEvent(entity=entity, action=action, model=name)


class DeliveryLog:
    """Delivery ids seen recently, to answer a duplicate without acting twice; bounded in memory.

    An id only needs remembering while its signed timestamp can still pass the window: from first
    sight until 2 x tolerance later (its timestamp may have been up to ``tolerance`` ahead). Past
    ``max_entries`` the oldest ids go first.
    """

    def __init__(self, tolerance_seconds: float, max_entries: int) -> None:
        self.keep_seconds = 2 * tolerance_seconds
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str, now: float | None = None) -> bool:
        """Record ``delivery_id``; False when it was already seen within the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= self.keep_seconds and len(self._seen) < self.max_entries:
                    break
                self._seen.pop(oldest)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True

    def __len__(self) -> int:
        return len(self._seen)
