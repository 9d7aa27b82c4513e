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
    time: str  # ISO-8601 UTC: ce-time when given, else when the sink received it
    body: Any  # the decoded JSON payload

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "isvc": self.inference_service,
            "ns": self.namespace,
            "component": self.component,
            "time": self.time,
            "body": self.body,
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
        )


def _event_time(raw: str | None) -> str:
    if raw:
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            raise EventError("ce-time", "invalid_time", f"ce-time {raw!r} is not an RFC 3339 time") from None
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        return stamp.isoformat()
    return datetime.now(UTC).isoformat()


def parse_event(headers: dict[str, str], body: bytes) -> Event:
    """Check a binary-mode CloudEvent; raise EventError (4xx) naming what is wrong."""
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
            "ce-type", "unknown_type", f"ce-type {ce_type!r} is neither {REQUEST_TYPE} nor {RESPONSE_TYPE}"
        )
    if len(headers["ce-id"]) > 256:
        raise EventError("ce-id", "too_long", "ce-id is longer than 256 characters")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventError("body", "invalid_json", f"the event body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EventError("body", "wrong_type", "the event body must be a JSON object (a v1 or v2 payload)")
    if kind == "request" and "instances" not in payload and "inputs" not in payload:
        raise EventError("body", "unknown_payload", "a request body needs 'instances' (v1) or 'inputs' (v2)")
    if kind == "response" and not ({"predictions", "outputs", "error"} & payload.keys()):
        raise EventError(
            "body", "unknown_payload", "a response body needs 'predictions' (v1), 'outputs' (v2) or 'error'"
        )
    return Event(
        id=headers["ce-id"],
        kind=kind,
        inference_service=headers["ce-inferenceservicename"],
        namespace=headers.get("ce-namespace", ""),
        component=headers.get("ce-component", ""),
        time=_event_time(headers.get("ce-time")),
        body=payload,
    )


def _request_features(body: dict) -> list[dict[str, Any]]:
    """One dict of features per instance; positional values get names ``input_<i>``."""
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise EventError("body.instances", "wrong_type", "'instances' must be a list")
        rows = []
        for instance in instances:
            if isinstance(instance, dict):
                rows.append(dict(instance))
            elif isinstance(instance, list):
                rows.append({f"input_{i}": value for i, value in enumerate(instance)})
            else:
                rows.append({"input_0": instance})
        return rows
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
        raise EventError("body.inputs", "wrong_type", "'inputs' must be a list of tensors")
    columns: dict[str, list] = {}
    for tensor in inputs:
        data, shape = tensor.get("data"), tensor.get("shape")
        flat = list(_flat(data))
        if isinstance(shape, list) and len(shape) == 2 and shape[1] not in (1,) and shape[1]:
            width = int(shape[1])
            for j in range(width):
                columns[f"input_{j}"] = flat[j::width]
        else:
            columns[str(tensor.get("name"))] = flat
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise EventError("body.inputs", "shape_mismatch", "inputs hold different numbers of rows")
    n = lengths.pop()
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


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


def pair_rows(request: Event, response: Event) -> list[dict[str, Any]]:
    """Rows of one request/response pair; EventError (422) when they cannot belong together.

    Times stay ISO strings here (cheap per event); ``rows_frame`` converts a whole flush at once.
    """
    features = _request_features(request.body)
    predictions, probabilities, model_name, model_version = _response_outputs(response.body)
    if not isinstance(predictions, list) or len(predictions) != len(features):
        raise EventError(
            "body",
            "pair_mismatch",
            f"event {request.id}: the request has {len(features)} instance(s) but the response "
            f"{len(predictions) if isinstance(predictions, list) else 'no'} prediction(s)",
            status=422,
        )
    if probabilities is not None and len(probabilities) != len(features):
        probabilities = None
    rows = []
    for index, values in enumerate(features):
        prediction = predictions[index]
        probability = probabilities[index] if probabilities is not None else math.nan
        meta = {
            "request_id": request.id,
            "row_index": index,
            "inference_service": request.inference_service,
            "namespace": request.namespace,
            "component": request.component or response.component,
            "model_name": str(model_name or request.inference_service),
            "model_version": str(model_version or "unknown"),
            "requested_at": request.time,
            "responded_at": response.time,
            "prediction": prediction if isinstance(prediction, int | float) else math.nan,
            "probability": probability if isinstance(probability, int | float) else math.nan,
        }
        rows.append({**values, **meta})  # a feature named like a metadata column cannot overwrite it
    return rows


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Many pairs' rows as one payload-log DataFrame (UTC timestamps)."""
    frame = pd.DataFrame(rows)
    for column in ("requested_at", "responded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
