"""Dead letters: why an event was not scored, with its coordinates, in the same transaction as the rest.

A dead letter keeps the input's key and value unchanged (so it can be fixed and replayed), except an
oversized value, which is cut to ``stream.dlq_value_bytes`` (the original size is in a header) so the
dead letter itself always fits the topic. A bad event never stalls its partition: it is answered
here and the partition moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlstack.serving.stream import records as h
from mlstack.serving.stream.records import InEvent, OutRecord


class DlqReason(StrEnum):
    """Why an event went to the dead-letter topic (header ``mlstack-dlq-reason``)."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    WRONG_TYPE = "wrong_type"
    CONTRACT_VIOLATION = "contract_violation"
    UNKNOWN_MODEL = "unknown_model"
    MODEL_ERROR = "model_error"


# the documentation of each reason (docs/streaming.md shows this table; a test keeps them equal)
REASON_TEXT = {
    DlqReason.EMPTY: "the value is empty or null (a tombstone)",
    DlqReason.OVERSIZED: "the value is larger than stream.max_event_bytes; the dead letter keeps its first "
    "stream.dlq_value_bytes",
    DlqReason.NOT_UTF8: "the value is not UTF-8 text",
    DlqReason.INVALID_JSON: "the value is UTF-8 but not JSON",
    DlqReason.INVALID_REQUEST: "JSON, but not a record, a v1 body or a v2 body the predictor's parser accepts "
    "(no rows, too many rows, a tensor whose shape does not match its data, ...)",
    DlqReason.WRONG_TYPE: "a value of the wrong type for its feature (text where a number belongs, a list "
    "where a scalar belongs)",
    DlqReason.CONTRACT_VIOLATION: "the model's data contract refuses a value or the row's features "
    "(missing or unknown feature, out of range, unknown category, null where none is allowed)",
    DlqReason.UNKNOWN_MODEL: "the event's mlstack-model header names a model this scorer does not serve",
    DlqReason.MODEL_ERROR: "the model's engine failed on rows the contract accepted",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Rejection:
    """Why one event is not scored: the reason, and the field and rule the parser or contract named."""

    reason: DlqReason
    field: str
    rule: str
    message: str


def dead_letter(event: InEvent, rejection: Rejection, topic: str, max_value_bytes: int) -> OutRecord:
    """The dead-letter record of ``event``: its key and value, the reason and its coordinates."""
    value = event.value or b""
    headers = [
        (h.DLQ_REASON, rejection.reason.value.encode()),
        (h.DLQ_FIELD, rejection.field[:200].encode()),
        (h.DLQ_RULE, rejection.rule.encode()),
        (h.DLQ_MESSAGE, rejection.message[:1000].encode()),
        *event.source_headers(),
    ]
    if len(value) > max_value_bytes:
        headers.append((h.DLQ_ORIGINAL_BYTES, str(len(value)).encode()))
        value = value[:max_value_bytes]
    key = event.key if event.key is None or len(event.key) <= max_value_bytes else event.key[:max_value_bytes]
    return OutRecord(topic, key, value, headers)
