"""The rollout controller's Prometheus metrics (served on its ``/metrics``), one registry per controller."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.moves = Counter(
            "mlstack_rollout_moves",
            "Moves the controller applied, by InferenceService and move (start, switch, promote, rollback)",
            ["inference_service", "move"],
            registry=r,
        )
        self.reconciles = Counter(
            "mlstack_rollout_reconciles",
            "Reconciles of one InferenceService, by trigger (webhook, resync, retry, leader) and result",
            ["trigger", "result"],
            registry=r,
        )
        self.deliveries = Counter(
            "mlstack_rollout_webhook_deliveries",
            "Webhook deliveries received, by result (accepted, duplicate, ignored, or the refusal rule)",
            ["result"],
            registry=r,
        )
        self.registrations = Counter(
            "mlstack_rollout_webhook_registrations",
            "Attempts to register the controller's webhook in MLflow, by result",
            ["result"],
            registry=r,
        )
        self.leader = Gauge(
            "mlstack_rollout_leader", "1 while this replica holds the Lease and may act", registry=r
        )
        self.reconcile_seconds = Histogram(
            "mlstack_rollout_reconcile_seconds",
            "Time of one reconcile (Kubernetes and MLflow reads, and the move if any)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.trigger_to_move = Histogram(
            "mlstack_rollout_trigger_to_move_seconds",
            "From the trigger (webhook received, resync due) to the move accepted by the API server",
            ["trigger"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_full_reconcile = Gauge(
            "mlstack_rollout_last_full_reconcile_timestamp_seconds",
            "Unix time the last full reconcile of every managed InferenceService was queued",
            registry=r,
        )
        self.queue_depth = Gauge(
            "mlstack_rollout_queue_depth", "InferenceServices waiting to be reconciled", registry=r
        )
