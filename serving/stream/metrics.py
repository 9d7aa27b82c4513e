"""Prometheus metrics of ``mlstack stream`` (its ``/metrics``): lag, batch size, events/s, DLQ, latency.

Events per second is ``rate(mlstack_stream_events_total[1m])``; lag is the records a partition still
holds beyond the scorer's position; latency is from the input's Kafka timestamp to the commit of the
transaction that answered it (what a consumer of the output topic waits, minus its own poll).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "mlstack_stream_events",
    "Input events handled, by outcome (scored, dead_letter) and variant (champion, challenger, none)",
    ["model_name", "outcome", "variant"],
)
ROWS = Counter("mlstack_stream_rows", "Rows scored, by model version", ["model_name", "model_version"])
DEAD_LETTERS = Counter(
    "mlstack_stream_dead_letters", "Events sent to the dead-letter topic, by reason", ["model_name", "reason"]
)
BATCH_EVENTS = Histogram(
    "mlstack_stream_batch_events",
    "Events per micro-batch",
    ["model_name"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "mlstack_stream_batch_seconds",
    "Time from a micro-batch's first consumed event to its commit",
    ["model_name"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LATENCY = Histogram(
    "mlstack_stream_latency_seconds",
    "From an input event's Kafka timestamp to the commit of its prediction",
    ["model_name"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG = Gauge(
    "mlstack_stream_consumer_lag",
    "Records of an input partition beyond the scorer's position",
    ["topic", "partition"],
)
ABORTS = Counter(
    "mlstack_stream_transaction_aborts",
    "Micro-batches whose transaction was aborted and retried",
    ["model_name"],
)
ROUTING = Gauge(
    "mlstack_stream_routing_percent",
    "Share of keys (0-100) each served version takes",
    ["model_name", "model_version", "variant"],
)
STORE_ROWS = Counter("mlstack_stream_store_rows", "Payload rows the store writer wrote", ["topic"])
STORE_FILES = Counter("mlstack_stream_store_files", "Payload files the store writer wrote", ["topic"])
