"""What goes in and out of the scorer: an input event, an output record, and every header name.

Output records carry headers so a consumer can tell, without parsing the value, which model version
answered and which input it answers (``mlstack-source-*``); dead letters carry the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka import Message

# on predictions and dead letters: where the input came from
SOURCE_TOPIC = "mlstack-source-topic"
SOURCE_PARTITION = "mlstack-source-partition"
SOURCE_OFFSET = "mlstack-source-offset"
SOURCE_TIMESTAMP = "mlstack-source-timestamp"  # the input's Kafka timestamp, ms since the epoch
# on predictions: who answered; the request id is the payload rows' request_id (feedback joins on it)
MODEL_NAME = "mlstack-model-name"
MODEL_VERSION = "mlstack-model-version"
VARIANT = "mlstack-variant"
REQUEST_ID = "mlstack-request-id"
# on input events (optional): the model the event is meant for; another name is a dead letter
MODEL = "mlstack-model"
# on dead letters
DLQ_REASON = "mlstack-dlq-reason"
DLQ_FIELD = "mlstack-dlq-field"
DLQ_RULE = "mlstack-dlq-rule"
DLQ_MESSAGE = "mlstack-dlq-message"
DLQ_ORIGINAL_BYTES = "mlstack-dlq-original-bytes"  # set when the value was cut to stream.dlq_value_bytes


@dataclass(frozen=True, slots=True)
class InEvent:
    """One consumed Kafka record, copied out of the client's message object."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def request_id(self) -> str:
        """The payload rows' ``request_id``: the event's coordinates, unique and stable across replays."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def source_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]
        if self.timestamp_ms is not None:
            headers.append((SOURCE_TIMESTAMP, str(self.timestamp_ms).encode()))
        return headers


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce: a prediction, a dead letter or a payload chunk."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def from_message(message: Message) -> InEvent:
    """An ``InEvent`` from a confluent-kafka ``Message`` (timestamp type 0 means none was set)."""
    # The ignores restate what a consumed record is, at no cost per event (no cast() call on the hot
    # path): confluent-kafka==2.16.1's cimpl.pyi types topic/partition/offset Optional (None only on an
    # error event; callers pass records whose error() is None) and headers a dict-or-list union (a
    # consumed record's are a list of (str, bytes | None) pairs).
    kind, stamp = message.timestamp()
    return InEvent(
        message.topic(),  # type: ignore[arg-type]
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        stamp if kind else None,
        message.key(),
        message.value(),
        tuple(message.headers() or ()),  # type: ignore[arg-type]
    )
