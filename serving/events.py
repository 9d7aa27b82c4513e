"""KServe logger CloudEvents in, payload-log rows out: pure functions the sink calls.

The KServe logger (``spec.predictor.logger``, mode ``all``) posts each request and each response as
a binary-mode CloudEvent: the body is the raw payload, the attributes are headers (``ce-id`` shared
by a request and its response, ``ce-type`` ending in ``.request`` or ``.response``,
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``). ``parse_event`` checks one event;
``pair_rows`` turns a request and its response into one row per instance in the payload-log format
(``mlstack.core.payload``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa

from mlstack.core import names, payload
from mlstack.core.contract import DataContract, Feature
from mlstack.serving.protocol import RequestError, parse_unnamed, parse_v1, parse_v2

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
        return {"error": self.message, "field": self.field, "rule": self.rule}


@dataclass
class Event:
    """One accepted CloudEvent, as stored in the write-ahead log."""

    id: str
    kind: str  # "request" | "response"
    inference_service: str
    namespace: str
    component: str
    time: str  # ISO-8601 UTC: ce-time when given and sane, else when the sink received it
    body: Any  # the decoded JSON payload
    time_replaced: str | None = None  # the ce-time as sent, when it was outside the window and replaced
    size: int = 0  # bytes of the body as received (what a waiting half costs in memory)

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "isvc": self.inference_service,
            "ns": self.namespace,
            "component": self.component,
            "time": self.time,
            "body": self.body,
            "time_replaced": self.time_replaced,
            "size": self.size,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        return cls(
            record["id"],
            record["kind"],
            record["isvc"],
            record["ns"],
            record["component"],
            record["time"],
            record["body"],
            record.get("time_replaced"),
            int(record.get("size") or 0),
        )


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
    if not event_id.isprintable() or any(c.isspace() for c in event_id):
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
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventError("body", "invalid_json", f"the event body is not JSON: {exc}") from None
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
    return Event(
        id=event_id,
        kind=kind,
        inference_service=isvc,
        namespace=namespace,
        component=component,
        time=stamp,
        body=payload,
        time_replaced=replaced,
        size=len(body),
    )


def instance_count(body: dict) -> int:
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


def is_model_error(response: Event) -> bool:
    return "error" in response.body and "predictions" not in response.body and "outputs" not in response.body


def _flat(data: Any):
    if isinstance(data, list):
        for item in data:
            yield from _flat(item)
    else:
        yield data


def _response_outputs(body: dict) -> tuple[list, list | None, str | None, str | None]:
    """(predictions, probabilities or None, model name, model version) from a v1 or v2 response."""
    if "predictions" in body:
        probabilities = body.get("probabilities")
        return body["predictions"], probabilities, body.get("model_name"), body.get("model_version")
    predictions, probabilities = None, None
    for output in body.get("outputs") or []:
        if not isinstance(output, dict):
            continue
        if output.get("name") == "probability":
            probabilities = list(_flat(output.get("data")))
        elif predictions is None or output.get("name") == "predict":
            predictions = list(_flat(output.get("data")))
    if predictions is None:
        raise EventError("body.outputs", "no_predictions", "the response has no output tensor")
    return predictions, probabilities, body.get("model_name"), body.get("model_version")


def response_version(response: Event) -> tuple[str, str]:
    """(model name, model version) a response names (defaults: the service name, ``unknown``)."""
    body = response.body
    name = body.get("model_name") if isinstance(body.get("model_name"), str) else None
    version = body.get("model_version")
    return str(name or response.inference_service), str(version if version is not None else "unknown")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def type_value(value: Any, feature: Feature) -> tuple[Any, bool]:
    """(value typed by the contract, whether it had to be dropped): the predictor's rule for a type.

    Numeric/integer features take JSON numbers and strings holding a finite decimal number
    (``"40"``, as the predictor does); categorical ones take text (numbers become their text,
    booleans ``True``/``False``). Anything else is stored as missing, its raw text kept.
    """
    if value is None:
        return None, False
    if feature.is_categorical:
        if isinstance(value, bool):
            return ("True" if value else "False"), False
        if isinstance(value, str | int | float):
            return (value.capitalize() if feature.type == "boolean" else value) if isinstance(
                value, str
            ) else str(value), False
        return None, True
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None, True
        return (number, False) if math.isfinite(number) else (None, True)
    parsed = _number(value)
    return (parsed, False) if parsed is not None else (None, True)


def request_columns(request: Event, contract: DataContract | None) -> tuple[dict[str, list], int]:
    """The request's columns through ``mlstack.serving.protocol`` (the predictor's parser); EventError if unparseable.

    With the contract, columns are the contract's features, typed by it; without, named as sent and
    positional values as ``input_<i>``.
    """
    body = request.body
    try:
        if contract is None:
            parsed = parse_unnamed(body, MAX_ROWS)
        elif "instances" in body:
            parsed = parse_v1(body, contract.feature_names, MAX_ROWS)
        else:
            parsed = parse_v2(body, contract.feature_names, MAX_ROWS)
    except RequestError as exc:
        raise EventError(f"request.{exc.field}", exc.rule, exc.message, status=422) from None
    return parsed.columns, parsed.rows


def pair_rows(
    request: Event, response: Event, contract: DataContract | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of one request/response pair and the count of dropped values per feature.

    EventError (422) when the two cannot belong together (the sink keeps them under ``unpaired/``).
    Times stay ISO strings here (cheap per event); ``rows_frame`` converts a whole flush at once.
    """
    columns, count = request_columns(request, contract)
    predictions, probabilities, _, _ = _response_outputs(response.body)
    model_name, model_version = response_version(response)
    if not isinstance(predictions, list) or len(predictions) != count:
        raise EventError(
            "body",
            "pair_mismatch",
            f"event {request.id}: the request has {count} instance(s) but the response "
            f"{len(predictions) if isinstance(predictions, list) else 'no'} prediction(s)",
            status=422,
        )
    if not isinstance(probabilities, list) or len(probabilities) != count:
        probabilities = None
    features = {f.name: f for f in contract.features} if contract is not None else {}
    dropped: dict[str, int] = {}
    rows = []
    for index in range(count):
        values: dict[str, Any] = {}
        invalid: dict[str, str] = {}
        for name, column in columns.items():
            if name in payload.META_COLUMNS or name in payload.EXTRA_COLUMNS:
                continue  # a feature named like a metadata column cannot overwrite it
            raw = column[index]
            if name in features:
                typed, bad = type_value(raw, features[name])
                if bad:
                    invalid[name] = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
                    dropped[name] = dropped.get(name, 0) + 1
                values[name] = typed
            else:
                values[name] = raw
        prediction = _number(predictions[index])
        probability = _number(probabilities[index]) if probabilities is not None else None
        rows.append(
            values
            | {
                "request_id": request.id,
                "row_index": index,
                "inference_service": request.inference_service,
                "namespace": request.namespace,
                "component": request.component or response.component,
                "model_name": model_name,
                "model_version": model_version,
                "requested_at": request.time,
                "responded_at": response.time,
                "prediction": math.nan if prediction is None else prediction,
                "probability": math.nan if probability is None else probability,
                "invalid_values": orjson.dumps(invalid).decode() if invalid else None,
                "ce_time_replaced": request.time_replaced or response.time_replaced,
            }
        )
    return rows, dropped


def rows_frame(rows: list[dict[str, Any]], contract: DataContract | None = None) -> pd.DataFrame:
    """One model version's rows as a payload-log DataFrame: UTC timestamps, columns typed by the contract."""
    frame = pd.DataFrame(rows)
    for column in ("requested_at", "responded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ("invalid_values", "ce_time_replaced"):
        frame[column] = frame[column].astype("string")
    typed = set()
    if contract is not None:
        for feature in contract.features:
            if feature.name in frame.columns:
                kind = "string" if feature.is_categorical else "float64"
                frame[feature.name] = frame[feature.name].astype(kind)
                typed.add(feature.name)
    for column in frame.columns:
        if column not in typed and column not in payload.META_COLUMNS and frame[column].dtype == object:
            frame[column] = _storable(frame[column])
    return frame


def _storable(column: pd.Series) -> pd.Series:
    """A column no contract types, as sent when Parquet can hold it in one type, else as text.

    Without a contract a feature column is stored as sent; values one Parquet type cannot hold
    (``40`` in one row, ``"sixty"`` or ``true`` in another) would make the whole pair unwritable,
    so such a column becomes text (JSON for non-strings) and readers type it by the contract.
    """
    try:
        pa.array(column, from_pandas=True)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return column.map(_text).astype("string")
    return column


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)
