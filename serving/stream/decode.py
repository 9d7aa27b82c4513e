"""Event bytes -> parsed rows with the predictor's own parser, or the reason it cannot be scored.

An event's value is one of (the predictor's three input forms, plus the plain record streams carry):

- a record: ``{"feature": value, ...}``, one row named by the contract;
- a v1 body: ``{"instances": [{...}, ...]}`` or positional ``{"instances": [[...], ...]}``;
- a v2 body: ``{"inputs": [...]}``, one tensor per feature or one ``[n, F]`` tensor in contract order.

Structure is judged by ``mlstack.serving.protocol`` exactly as an HTTP request would be; values are
judged later by the model's contract (``batch``), because the variant that scores the event (and so
the contract) is chosen by its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from mlstack.serving.protocol import ParsedRequest, RequestError, parse_v1, parse_v2
from mlstack.serving.stream.dlq import DlqReason, Rejection

# parser rules that are about a value's type, not the body's structure
_TYPE_RULES = {"wrong_type", "not_a_number"}
# parser rules that are about which features a row has (the contract's business)
_FEATURE_RULES = {"unknown_feature", "missing_feature", "wrong_length", "duplicate_input"}


class Shape(StrEnum):
    """Which of the input forms an event used; the prediction is answered in the same form."""

    RECORD = "record"
    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True, slots=True)
class Decoded:
    shape: Shape
    parsed: ParsedRequest
    body: dict[str, Any]


def _body(value: bytes | None, max_bytes: int) -> dict[str, Any] | Rejection:
    if not value:
        return Rejection(
            reason=DlqReason.EMPTY, field="value", rule="empty", message="the event has no value"
        )
    if len(value) > max_bytes:
        return Rejection(
            reason=DlqReason.OVERSIZED,
            field="value",
            rule="too_large",
            message=f"the event is {len(value)} bytes; the limit is {max_bytes} (stream.max_event_bytes)",
        )
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Rejection(
                reason=DlqReason.NOT_UTF8,
                field="value",
                rule="not_utf8",
                message=f"the event is not UTF-8 text (byte {bad.start}: {value[bad.start : bad.start + 1]!r})",
            )
        return Rejection(
            reason=DlqReason.INVALID_JSON, field="value", rule="invalid_json", message=f"not JSON: {exc}"
        )
    if not isinstance(body, dict):
        return Rejection(
            reason=DlqReason.INVALID_REQUEST,
            field="value",
            rule="wrong_type",
            message=f"an event must be a JSON object (a record, a v1 or a v2 body), not {type(body).__name__}",
        )
    return body


def rejection_of(error: RequestError, by_contract: bool = False) -> Rejection:
    """The dead-letter reason of a parser refusal, or of the contract's (``by_contract``)."""
    if error.rule in _TYPE_RULES:
        reason = DlqReason.WRONG_TYPE
    elif by_contract or error.rule in _FEATURE_RULES:
        reason = DlqReason.CONTRACT_VIOLATION
    else:
        reason = DlqReason.INVALID_REQUEST
    return Rejection(reason=reason, field=error.field, rule=error.rule, message=error.message)


def decode(value: bytes | None, features: list[str], max_bytes: int, max_rows: int) -> Decoded | Rejection:
    """Parse one event's value for a model taking ``features``; a Rejection names what is wrong."""
    body = _body(value, max_bytes)
    if isinstance(body, Rejection):
        return body
    try:
        if "instances" in body:
            return Decoded(Shape.V1, parse_v1(body, features, max_rows), body)
        if "inputs" in body:
            return Decoded(Shape.V2, parse_v2(body, features, max_rows), body)
        return Decoded(Shape.RECORD, parse_v1({"instances": [body]}, features, max_rows), body)
    except RequestError as error:
        return rejection_of(error)
