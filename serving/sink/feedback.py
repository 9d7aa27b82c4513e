"""``/feedback``: labels checked against what was logged, and labels that came early kept until their pair.

A label whose id the sink does not know yet (its request or response is still on the way, or the
pair waits for its partner) is stored at once under ``feedback_orphans/`` (durable, like every
acknowledged label) and held in memory for ``sink.early_label_seconds``; when the pair completes
in that time the label is checked like any other and written to ``feedback/`` with the time it was
received, so it joins its prediction. The hold is bounded (``sink.max_early_labels``); what does
not fit, or waits too long, stays an orphan. Counted in ``mlstack_sink_feedback_total{outcome}``,
held labels in ``mlstack_sink_early_labels``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlstack.core import payload
from mlstack.core.labels import label_problem
from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink.events import EventError

MAX_ITEMS = 10_000
Origin = Callable[[str], tuple[str, str, int] | None]  # ce-id -> (model, version, rows) when logged


def parse_feedback(body: object) -> list[dict[str, Any]]:
    """``{request_id, label[, row_index]}``, a list of them, or ``{"feedback": [...]}`` -> items.

    Checks the shape only; ``check_feedback`` judges each label against what was logged.
    """
    if isinstance(body, dict) and "feedback" in body:
        body = body["feedback"]
    items = body if isinstance(body, list) else [body]
    if not items:
        raise EventError("body", "empty_batch", "no feedback given")
    if len(items) > MAX_ITEMS:
        raise EventError("body", "batch_too_large", f"at most {MAX_ITEMS} feedback items per request")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventError(f"[{i}]", "wrong_type", "each feedback item must be an object")
        request_id, label = item.get("request_id"), item.get("label")
        row_index = item.get("row_index", 0)
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            raise EventError(
                f"[{i}].request_id", "missing_field", "request_id (the ce-id / request id) is required"
            )
        if label is None or not isinstance(label, int | float | str | bool):
            raise EventError(f"[{i}].label", "missing_field", "label must be a number, string or boolean")
        if isinstance(label, str) and len(label) > 256:
            raise EventError(f"[{i}].label", "invalid_label", "label is longer than 256 characters")
        if isinstance(row_index, bool) or not isinstance(row_index, int) or not 0 <= row_index < 2**31:
            raise EventError(f"[{i}].row_index", "wrong_type", "row_index must be a non-negative integer")
        rows.append({"request_id": request_id, "row_index": row_index, "label": label})
    return rows


def label_error(
    item: dict[str, Any], origin: tuple[str, str, int], contracts: ContractCache, until: float
) -> str | None:
    """Why a label cannot be stored for its logged prediction (None when it can)."""
    model, version, rows = origin
    contract = contracts.get(model, version, until=until)
    problem = label_problem(item["label"], contract.target if contract else None)
    if problem and contract is None:
        problem += " (the model's contract could not be read from the registry)"
    if problem:
        return f"{model} version {version}: {problem}"
    if rows and item["row_index"] >= rows:
        return (
            f"request {item['request_id']} logged {rows} row(s); row_index {item['row_index']} does not exist"
        )
    return None


def check_feedback(
    known: Origin, contracts: ContractCache, items: list[dict[str, Any]], wait_seconds: float = 2.0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(labels of logged ids, labels of ids not known yet): EventError (400) names the first bad item.

    A label is checked against the model's target, a row index against the rows logged; an id the
    sink does not know (not logged yet, never logged, or older than the dedup window) is not refused.
    """
    until = time.monotonic() + wait_seconds
    stored, unknown = [], []
    for i, item in enumerate(items):
        origin = known(item["request_id"])
        if origin is None:
            label = item["label"]
            problem = None if isinstance(label, str) else label_problem(label, None)
            if problem:
                raise EventError(f"[{i}].label", "invalid_label", problem)
            unknown.append(item)
            continue
        problem = label_error(item, origin, contracts, until)
        if problem:
            rule = "row_out_of_range" if "does not exist" in problem else "invalid_label"
            raise EventError(
                f"[{i}].row_index" if rule == "row_out_of_range" else f"[{i}].label", rule, problem
            )
        stored.append(item)
    return stored, unknown


def write_adopted(
    store: str, known: Origin, contracts: ContractCache, adopted: list[dict[str, Any]], until: float
) -> int:
    """Early labels whose pair is stored now: checked like any label, the good ones written to
    ``feedback/`` with the time they were received; returns how many (run in a worker thread)."""
    import logging

    good = []
    for item in adopted:
        origin = known(item["request_id"])
        problem = label_error(item, origin, contracts, until) if origin else "its pair is not stored"
        if problem:
            m.FEEDBACK.labels("early_refused").inc()
            logging.getLogger(__name__).warning(
                "an early label for %s stays an orphan: %s", item["request_id"], problem
            )
        else:
            good.append(item)
    if good:
        payload.write_feedback(store, feedback_frame(good))
    return len(good)


def feedback_frame(items: list[dict[str, Any]], received_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """Feedback rows; items without their own ``received_at`` get ``received_at`` (default: now)."""
    now = received_at if received_at is not None else pd.Timestamp(datetime.now(UTC))
    return pd.DataFrame(
        {
            "request_id": [i["request_id"] for i in items],
            "row_index": pd.array([i["row_index"] for i in items], dtype="int64"),
            "label": [payload.label_text(i["label"]) for i in items],
            "received_at": [i.get("received_at", now) for i in items],
        }
    )


class EarlyLabels:
    """Labels of ids not logged yet, held (bounded, for ``hold_seconds``) until their pair completes."""

    def __init__(self, hold_seconds: float = 600.0, max_labels: int = 100_000):
        self.hold_seconds = hold_seconds
        self.max_labels = max_labels
        self.held: dict[str, list[dict[str, Any]]] = {}
        self._order: deque[tuple[float, str]] = deque()
        self.count = 0

    def hold(self, items: list[dict[str, Any]], received_at: pd.Timestamp, age_seconds: float = 0.0) -> int:
        """Hold what fits; returns how many were held (the rest stay orphans only)."""
        held = 0
        stamp = time.monotonic() - age_seconds
        for item in items:
            if self.count >= self.max_labels:
                m.FEEDBACK.labels("hold_full").inc(len(items) - held)
                break
            self.held.setdefault(item["request_id"], []).append(item | {"received_at": received_at})
            self._order.append((stamp, item["request_id"]))
            self.count += 1
            held += 1
        m.EARLY_LABELS.set(self.count)
        return held

    def release(self, request_id: str) -> list[dict[str, Any]]:
        """The labels held for ``request_id`` (its pair just completed), in the order they came."""
        items = self.held.pop(request_id, None)
        if not items:
            return []
        self.count -= len(items)
        m.EARLY_LABELS.set(self.count)
        return items

    def expire(self) -> int:
        """Drop labels held longer than ``hold_seconds`` (they stay orphans); returns how many."""
        cutoff, dropped = time.monotonic() - self.hold_seconds, 0
        while self._order and self._order[0][0] < cutoff:
            _, request_id = self._order.popleft()
            items = self.held.get(request_id)
            if items:
                items.pop(0)
                dropped += 1
                if not items:
                    del self.held[request_id]
        self.count -= dropped
        if dropped:
            m.FEEDBACK.labels("expired_orphan").inc(dropped)
            m.EARLY_LABELS.set(self.count)
        return dropped
