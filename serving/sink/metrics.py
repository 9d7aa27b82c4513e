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
    "mlstack_sink_feedback",
    "Feedback labels by outcome: stored, orphan (id not known yet), held (orphan kept until its pair),"
    " joined_late (held, then joined), hold_full, expired_orphan, early_refused",
    ["outcome"],
)
FLUSH_FAILURES = Counter("mlstack_sink_flush_failures", "Flushes that failed (the events stay in the WAL)")
FLUSH_SECONDS = Histogram("mlstack_sink_flush_seconds", "Time to write one flush to the store")
PENDING = Gauge("mlstack_sink_pending_events", "Accepted events waiting for their partner")
PENDING_BYTES = Gauge(
    "mlstack_sink_pending_bytes",
    "Bytes held by accepted halves waiting for their partner (body + per-event overhead)",
)
HELD_BYTES = Gauge(
    "mlstack_sink_held_bytes",
    "Bytes of events held in memory (waiting halves, pairs not yet flushed), counted against sink.max_pending_bytes",
)
HELD_EVENTS = Gauge(
    "mlstack_sink_held_events", "Events held in memory, counted against sink.max_pending_events"
)
EARLY_LABELS = Gauge(
    "mlstack_sink_early_labels",
    "Labels held until their request/response pair completes (sink.max_early_labels)",
)
REGISTRY_UP = Gauge(
    "mlstack_sink_registry_up",
    "1 when the registry answered the last contract lookup or probe, 0 when it could not be reached, -1 before any",
)
REGISTRY_FAILURES = Gauge(
    "mlstack_sink_registry_failures",
    "Contract lookups and probes that could not reach the registry, since start",
)
CONTRACT_LOOKUPS = Counter(
    "mlstack_sink_contract_lookups",
    "Contract lookups done in the background, by outcome (found, not_found, registry_error)",
    ["outcome"],
)
WAL_BYTES = Gauge("mlstack_sink_wal_bytes", "Bytes in the write-ahead log's segments")
OLDEST_UNFLUSHED = Gauge(
    "mlstack_sink_oldest_unflushed_seconds", "Age of the oldest accepted event not yet in the store"
)
DEDUP_IDS = Gauge(
    "mlstack_sink_dedup_ids", "Stored ce-ids remembered to refuse duplicates (sink.max_dedup_ids at most)"
)
DEDUP_WINDOW = Gauge(
    "mlstack_sink_dedup_window_seconds",
    "Age of the oldest remembered ce-id: duplicates are refused this far back (sink.dedup_hours at most)",
)
READY = Gauge("mlstack_sink_ready", "1 while the last flush succeeded, 0 while flushes fail")
