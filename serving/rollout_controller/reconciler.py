"""Reconcile one InferenceService from the registry: read both, plan, apply one move, record it.

The move is built by ``mlstack.core.rollout`` and sent by ``Kube.apply_move`` (the path ``kubectl
model`` takes too); what is recorded: an events.k8s.io/v1 Event on the InferenceService and the
metrics of ``metrics.py``. The work queue keeps one pending entry per service (a burst of webhooks
for one model is one reconcile) and retries with a delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlstack.adapters import model_aliases
from mlstack.adapters.kube import Conflict, Kube, NotFound
from mlstack.core import isvc, rollout
from mlstack.core.errors import CheckFailed, MlstackError
from mlstack.core.settings import Settings
from mlstack.serving.rollout_controller.lease import micro_time
from mlstack.serving.rollout_controller.metrics import Metrics
from mlstack.serving.rollout_controller.plan import Action, Plan, foreign_change_age, plan, registry_ops

log = logging.getLogger(__name__)

FIELD_MANAGER = "mlstack-rollout-controller"
REPORTING_CONTROLLER = "serving.mlstack.io/rollout-controller"
EVENT_REASONS = {
    Action.START: ("StartCanary", "CanaryStarted"),
    Action.SWITCH: ("ServeChampion", "ChampionCanaryStarted"),
    Action.PROMOTE: ("Promote", "Promoted"),
    Action.ROLLBACK: ("Rollback", "RolledBack"),
}


@dataclass
class _Item:
    due: float
    trigger: str
    received: float


class WorkQueue:
    """Pending reconciles, one per InferenceService, each due at a time; safe across threads."""

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._cond = threading.Condition()

    def add(self, name: str, trigger: str, delay: float = 0.0) -> None:
        now = time.monotonic()
        with self._cond:
            item = self._items.get(name)
            if item is None or now + delay < item.due:
                received = now if item is None else min(item.received, now)
                self._items[name] = _Item(now + delay, trigger, received)
            self._cond.notify()

    def get(self, stop: threading.Event, timeout: float) -> tuple[str, str, float] | None:
        """The next due (name, trigger, received), waiting at most ``timeout``; None on time-out or stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if self._items:
                    name, item = min(self._items.items(), key=lambda kv: kv[1].due)
                    if item.due <= now:
                        del self._items[name]
                        return name, item.trigger, item.received
                    wait = min(item.due, deadline) - now
                else:
                    wait = deadline - now
                if wait <= 0:
                    return None
                self._cond.wait(wait)
        return None

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ServiceState:
    """What the controller last saw and did for one InferenceService (served on /status)."""

    model: str | None = None
    result: str = "pending"
    reason: str = ""
    at: str = ""
    last_move: str = ""
    warned: str = ""


@dataclass
class Reconciler:
    settings: Settings
    kube: Kube
    identity: str
    metrics: Metrics
    is_leader: Callable[[], bool]  # checked right before every write
    queue: WorkQueue = field(default_factory=WorkQueue)
    services: dict[str, ServiceState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.settings.rollout.inference_services:
            self.services.setdefault(name, ServiceState())

    def names_for(self, model: str) -> list[str]:
        """Managed services serving registered model ``model`` (or not read yet, so maybe)."""
        return [n for n, s in self.services.items() if s.model in (None, model)]

    def enqueue_all(self, trigger: str) -> None:
        for name in self.services:
            self.queue.add(name, trigger)

    def reconcile(self, name: str, trigger: str, received: float) -> str:
        """One reconcile; returns its result (noop, wait, moved, missing, not-leader, error)."""
        started = time.monotonic()
        state = self.services.setdefault(name, ServiceState())
        try:
            result, reason, delay = self._reconcile(name, state, received, trigger)
        except MlstackError as exc:  # the API server or MLflow failed or refused: try again later
            result, reason, delay = "error", str(exc), self.settings.rollout.retry_seconds
            self._warn(name, state, "ReconcileFailed", reason)
        changed = (result, reason) != (state.result, state.reason)
        state.result, state.reason, state.at = result, reason, micro_time()
        level = (
            logging.INFO if result in ("moved", "error") or (result == "wait" and changed) else logging.DEBUG
        )
        log.log(level, "%s (%s): %s: %s", name, trigger, result, reason)
        self.metrics.reconciles.labels(trigger, result).inc()
        self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        if delay is not None:
            self.queue.add(name, "retry", delay)
        return result

    def _reconcile(
        self, name: str, state: ServiceState, received: float, trigger: str
    ) -> tuple[str, str, float | None]:
        retry = self.settings.rollout.retry_seconds
        try:
            obj = self.kube.get(name)
        except NotFound as exc:
            return "missing", str(exc), None  # created later: the next resync sees it
        model = isvc.registered_model(obj)
        state.model = model
        aliases = model_aliases.current_aliases(self.settings, model)
        decided = plan(
            obj,
            aliases,
            initial_percent=self.settings.canary.initial_percent,
            foreign_change_age=foreign_change_age(obj, FIELD_MANAGER, datetime.now(UTC)),
            grace_seconds=self.settings.rollout.grace_seconds,
        )
        if decided.action == Action.NOOP:
            return "noop", decided.reason, None
        if decided.action == Action.WAIT:
            return "wait", decided.reason, max(decided.retry_after or retry, 0.5)
        aliases = aliases or {}
        try:
            move = self._build(decided, obj, aliases, model)
        except CheckFailed as exc:  # KServe has not caught up (revision not ready): look again soon
            return "wait", f"{decided.reason}: {exc}", retry
        if not self.is_leader():
            return "not-leader", f"lost the Lease before: {move.summary}", None
        try:
            self.kube.apply_move(move, obj)
        except Conflict:
            return "wait", f"{name} changed while planning; reading it again", 0.5
        self.metrics.moves.labels(name, decided.action.value).inc()
        self.metrics.trigger_to_move.labels(trigger).observe(time.monotonic() - received)
        ops = registry_ops(decided, move, aliases)
        note = f"{move.summary} ({decided.reason})"
        try:
            done = model_aliases.apply(self.settings, ops)
            if done:
                note += "; MLflow: " + "; ".join(done)
        except MlstackError as exc:
            self._warn(name, state, "RegistryUpdateFailed", str(exc))
        action, reason = EVENT_REASONS[decided.action]
        self._event(obj, "Normal", action, reason, note)
        state.last_move = note
        return "moved", note, retry

    def _build(self, decided: Plan, obj: dict[str, Any], aliases: dict[str, str], model: str) -> rollout.Move:
        if decided.action in (Action.START, Action.SWITCH):
            version = str(decided.version)
            # mlflow-artifacts:/ locations mapped onto the server's --artifacts-destination, which the
            # chart writes on the InferenceService (as kubectl model canary does). A version with no
            # location KServe can fetch is a UsageError: reported as an error (Warning Event), retried
            uri = model_aliases.storage_uri(self.settings, model, version, isvc.artifacts_destination(obj))
            return rollout.start(obj, aliases, version, uri, int(decided.percent or 100))
        if decided.action == Action.PROMOTE:
            return rollout.promote(obj, aliases)
        return rollout.rollback(obj, aliases, f"rollout controller: {decided.reason}")

    def _warn(self, name: str, state: ServiceState, reason: str, message: str) -> None:
        if state.warned == message:  # one Event per distinct problem, not one per retry
            return
        state.warned = message
        try:
            obj = self.kube.get(name)
        except MlstackError:
            return
        self._event(obj, "Warning", "Reconcile", reason, message)

    def _event(self, obj: dict[str, Any], kind: str, action: str, reason: str, note: str) -> None:
        meta = obj.get("metadata") or {}
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # client-go's recorder names events <object>.<unix nanoseconds in hex> (client-go v0.34.0 tools/record/util/util.go GenerateEventName)
            "metadata": {"name": f"{meta.get('name')}.{time.time_ns():x}", "namespace": self.kube.namespace},
            "eventTime": micro_time(),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.identity[:128],
            "action": action,
            "reason": reason,
            "type": kind,
            "note": note[:1024],
            "regarding": {
                "apiVersion": isvc.API_VERSION,
                "kind": "InferenceService",
                "name": meta.get("name"),
                "namespace": self.kube.namespace,
                "uid": meta.get("uid"),
            },
        }
        try:
            self.kube.create_event(body)
        except MlstackError as exc:
            log.warning("could not record the Event %s on %s: %s", reason, meta.get("name"), exc)
