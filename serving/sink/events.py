"""KServe logger CloudEvents in, payload-log rows out: pure functions the sink calls.

The KServe logger (``spec.predictor.logger``, mode ``all``) posts each request and each response as
a binary-mode CloudEvent: the body is the raw payload, the attributes are headers (``ce-id`` shared
by a request and its response, ``ce-type`` ending in ``.request`` or ``.response``,
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``). ``parse_event`` checks one event;
``mlstack.serving.sink.pairing`` turns a request and its response into payload-log rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mlstack.core import names
from mlstack.serving import binary
from mlstack.serving.http_errors import refusal
from mlstack.serving.protocol import RequestError

MAX_ROWS = 1_000_000  # the sink stores what the predictor answered; its own batch limit applied there
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
REQUIRED_HEADERS = ("ce-id", "ce-type", "ce-inferenceservicename")


class EventError(ValueError):
    """An event the sink cannot accept; ``status`` is the HTTP answer (4xx)."""

    def __init__(self, field: str, rule: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.rule, self.message, self.status = field, rule, message, status

    def to_dict(self) -> dict[str, str]:
        return refusal(self.field, self.rule, self.message)


@dataclass(slots=True)
class Event:
    """One accepted CloudEvent, as stored in the write-ahead log.

    The body is kept as the bytes received (``raw``), not as parsed JSON: a parsed body costs
    several times its size in Python objects (a float is 24 bytes plus an 8-byte slot), so a sink
    holding parsed halves used far more memory than it counted. What pairing needs early is parsed
    once in ``parse_event`` (``rows``, ``model_name``, ``model_version``, ``is_error``); the rest is
    parsed again at flush time, off the event loop (``body``).
    """

    id: str
    kind: str  # "request" | "response"
    inference_service: str
    namespace: str
    component: str
    time: str  # ISO-8601 UTC: ce-time when given and sane, else when the sink received it
    raw: bytes  # the JSON body as received (one line: JSON whitespace newlines become spaces)
    time_replaced: str | None = None  # the ce-time as sent, when it was outside the window and replaced
    size: int = 0  # bytes of the body as received
    rows: int = 0  # instances a request claims (0 for responses, or when unclear)
    model_name: str | None = None  # what a response names
    model_version: str | None = None
    is_error: bool = False  # a response that is a model error (no predictions)

    @property
    def body(self) -> Any:
        """The decoded JSON payload (parsed on each call: nothing parsed is kept)."""
        return orjson.loads(self.raw)

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "isvc": self.inference_service,
            "ns": self.namespace,
            "component": self.component,
            "time": self.time,
            "body": orjson.Fragment(self.raw),  # written as received, not parsed and dumped again
            "time_replaced": self.time_replaced,
            "size": self.size,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        body = record["body"]
        event = cls(
            record["id"],
            record["kind"],
            record["isvc"],
            record["ns"],
            record["component"],
            record["time"],
            orjson.dumps(body),
            record.get("time_replaced"),
            int(record.get("size") or 0),
        )
        describe(event, body)
        return event


def instance_count(body: dict[str, Any]) -> int:
    """Rows a request body claims (cheap, for flush sizing and /feedback row checks); 0 if unclear."""
    instances = body.get("instances")
    if isinstance(instances, list):
        return len(instances)
    inputs = body.get("inputs")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        shape = inputs[0].get("shape")
        if isinstance(shape, list) and shape and isinstance(shape[0], int):
            return shape[0]
    return 0


def describe(event: Event, body: dict[str, Any]) -> None:
    """Fill in what pairing needs from the parsed body (rows; a response's model, version, error)."""
    if event.kind == "request":
        event.rows = instance_count(body)
        return
    name, version = body.get("model_name"), body.get("model_version")
    event.model_name = name if isinstance(name, str) and name else None
    event.model_version = str(version) if version is not None else None
    event.is_error = "error" in body and "predictions" not in body and "outputs" not in body


@dataclass(frozen=True)
class TimeWindow:
    """How far a ``ce-time`` may lie from the receive time before the receive time replaces it."""

    max_age_seconds: float = 7 * 86400.0
    max_future_seconds: float = 300.0


def event_time(raw: str | None, now: datetime, window: TimeWindow) -> tuple[str, str | None]:
    """(ISO-8601 UTC time to store, the raw ce-time when it was replaced); EventError when unparseable.

    A time outside [now - max_age, now + max_future] (a far-future or year-1 clock) is replaced by
    the receive time and the raw text kept, so one odd clock can neither stall a flush nor be lost.
    """
    if not raw:
        return now.isoformat(), None
    if len(raw) > 64:
        raise EventError("ce-time", "invalid_time", "ce-time is longer than 64 characters")
    try:
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        raise EventError("ce-time", "invalid_time", f"ce-time {raw[:64]!r} is not an RFC 3339 time") from None
    age = (now - stamp).total_seconds()
    if age > window.max_age_seconds or -age > window.max_future_seconds:
        return now.isoformat(), raw
    return stamp.isoformat(), None


def _binary_header_length(headers: dict[str, str], body: bytes) -> int | None:
    """Where a binary-extension body's JSON header ends: the header if forwarded, else found.

    The KServe logger forwards only the ``metadataHeaders`` an InferenceService names, JSON-encoded
    in ``ce-metadata`` under Go's canonical names (kserve@v0.20.0 ``pkg/logger/handler.go`` and
    ``worker.go``); a replay client may send ``inference-header-content-length`` itself.
    """
    value = headers.get(binary.HEADER)
    if value is None and headers.get("ce-metadata"):
        try:
            metadata = orjson.loads(headers["ce-metadata"])
        except orjson.JSONDecodeError:
            metadata = {}
        values = metadata.get("Inference-Header-Content-Length") if isinstance(metadata, dict) else None
        value = values[0] if isinstance(values, list) and values and isinstance(values[0], str) else None
    if value is not None:
        return binary.header_length(value, len(body))
    return binary.header_end(body)


def _names_binary_tensors(head: bytes, key: str) -> bool:
    """Whether a JSON header announces binary tensors (some input/output has ``binary_data_size``)."""
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        return True  # a forwarded header length that cuts the JSON: binary.decode names the mistake
    tensors = header.get(key) if isinstance(header, dict) else None
    return isinstance(tensors, list) and any(
        isinstance(t, dict)
        and isinstance(t.get("parameters"), dict)
        and "binary_data_size" in t["parameters"]
        for t in tensors
    )


def _payload(headers: dict[str, str], body: bytes, kind: str) -> tuple[object, bool]:
    """(the event body as JSON, whether it was JSON): a binary-extension body (Open Inference v2)
    becomes the JSON it stands for."""
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError as exc:
        problem = f"the event body is not JSON: {exc}"
    key = "inputs" if kind == "request" else "outputs"
    try:
        length = _binary_header_length(headers, body)
        if length is None or length == len(body) or not _names_binary_tensors(body[:length], key):
            raise EventError("body", "invalid_json", problem)  # JSON with trailing bytes, not the extension
        return binary.decode(body, length, key), False
    except RequestError as error:
        raise EventError(f"body.{error.field}", error.rule, error.message) from None


def parse_event(
    headers: dict[str, str], body: bytes, window: TimeWindow | None = None, now: datetime | None = None
) -> Event:
    """Check a binary-mode CloudEvent; raise EventError (4xx) naming what is wrong.

    Every name that later becomes a path (service, namespace, component, a response's model
    version) is validated here (``mlstack.core.names``), so a hostile header is a 400, not a file.
    """
    now = now or datetime.now(UTC)
    for name in REQUIRED_HEADERS:
        if not headers.get(name):
            raise EventError(name, "missing_header", f"header {name} is required (binary-mode CloudEvent)")
    ce_type = headers["ce-type"]
    if ce_type == REQUEST_TYPE:
        kind = "request"
    elif ce_type == RESPONSE_TYPE:
        kind = "response"
    else:
        raise EventError(
            "ce-type",
            "unknown_type",
            f"ce-type {ce_type[:200]!r} is neither {REQUEST_TYPE} nor {RESPONSE_TYPE}",
        )
    event_id = headers["ce-id"]
    if len(event_id) > 256:
        raise EventError("ce-id", "too_long", "ce-id is longer than 256 characters")
    if not event_id.isprintable() or " " in event_id:  # isprintable leaves " " as the one space
        raise EventError("ce-id", "invalid_id", "ce-id may hold only printable characters without spaces")
    try:
        isvc = names.check_label(headers["ce-inferenceservicename"], "ce-inferenceservicename")
        namespace = headers.get("ce-namespace", "")
        if namespace:
            names.check_label(namespace, "ce-namespace")
        component = headers.get("ce-component", "")
        if component:
            names.check_label(component, "ce-component")
    except names.NameError_ as exc:
        raise EventError(exc.field, "invalid_name", exc.message) from None
    stamp, replaced = event_time(headers.get("ce-time"), now, window or TimeWindow())
    payload, was_json = _payload(headers, body, kind)
    if not isinstance(payload, dict):
        raise EventError("body", "wrong_type", "the event body must be a JSON object (a v1 or v2 payload)")
    if kind == "request" and "instances" not in payload and "inputs" not in payload:
        raise EventError("body", "unknown_payload", "a request body needs 'instances' (v1) or 'inputs' (v2)")
    if kind == "response":
        if not ({"predictions", "outputs", "error"} & payload.keys()):
            raise EventError(
                "body",
                "unknown_payload",
                "a response body needs 'predictions' (v1), 'outputs' (v2) or 'error'",
            )
        version = payload.get("model_version")
        if version is not None:
            try:
                names.check_version(
                    str(version) if isinstance(version, int) else version, "body.model_version"
                )
            except names.NameError_ as exc:
                raise EventError(exc.field, "invalid_name", exc.message) from None
        model_name = payload.get("model_name")
        if model_name is not None and (not isinstance(model_name, str) or len(model_name) > 253):
            raise EventError(
                "body.model_name", "wrong_type", "model_name must be a string of at most 253 characters"
            )
    if not was_json:  # kept (and written to the WAL) as the JSON the binary body stands for
        raw = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    elif b"\n" in body or b"\r" in body:
        raw = body.replace(b"\n", b" ").replace(b"\r", b" ")
    else:
        raw = body
    event = Event(
        id=event_id,
        kind=kind,
        inference_service=isvc,
        namespace=namespace,
        component=component,
        time=stamp,
        raw=raw,  # a newline in valid JSON is whitespace: one event stays one WAL line
        time_replaced=replaced,
        size=len(body),
    )
    describe(event, payload)
    return event
