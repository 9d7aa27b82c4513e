"""The payload sink's own Prometheus metrics (served on its ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("mlstack_sink_events", "CloudEvents received, by kind and outcome", ["kind", "outcome"])
REJECTED = Counter("mlstack_sink_rejected", "Requests to the sink answered 4xx/503, by rule", ["rule"])
ROWS = Counter("mlstack_sink_rows_written", "Prediction rows written to the payload log")
UNPAIRED = Counter("mlstack_sink_unpaired_events", "Events kept under unpaired/, by reason", ["reason"])
QUARANTINED = Counter(
    "mlstack_sink_quarantined_events", "Events of pairs a flush could not store, kept under quarantine/"
)
INVALID_VALUES = Counter(
    "mlstack_sink_invalid_values",
    "Feature values the contract could not take, stored as missing",
    ["feature"],
)
TIME_REPLACED = Counter(
    "mlstack_sink_time_replaced", "Events whose ce-time was outside the sane window and replaced"
)
FEEDBACK = Counter(
    "mlstack_sink_feedback", "Feedback labels stored, by outcome (stored, orphan)", ["outcome"]
)
FLUSH_FAILURES = Counter("mlstack_sink_flush_failures", "Flushes that failed (the events stay in the WAL)")
FLUSH_SECONDS = Histogram("mlstack_sink_flush_seconds", "Time to write one flush to the store")
PENDING = Gauge("mlstack_sink_pending_events", "Accepted events waiting for their partner")
PENDING_BYTES = Gauge("mlstack_sink_pending_bytes", "Bytes of accepted halves waiting for their partner")
WAL_BYTES = Gauge("mlstack_sink_wal_bytes", "Bytes in the write-ahead log's segments")
OLDEST_UNFLUSHED = Gauge(
    "mlstack_sink_oldest_unflushed_seconds", "Age of the oldest accepted event not yet in the store"
)
READY = Gauge("mlstack_sink_ready", "1 while the last flush succeeded, 0 while flushes fail")
