"""The controller's loops: hold the Lease, queue a full reconcile every interval, work the queue.

Two threads beside the HTTP server: the *elector* (every ``lease_retry_seconds``: renew or try to
take the Lease; on becoming leader and every ``resync_seconds`` while leading, queue every service;
it never calls MLflow, so nothing slow delays a renewal) and the *worker* (registers the webhook when
due, then reconciles what is due, one service at a time, and only while leading). Webhooks only add
to the queue.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any

from mlstack.adapters import mlflow_webhooks
from mlstack.adapters.kube import Kube
from mlstack.core.errors import MlstackError, UsageError
from mlstack.core.settings import Settings
from mlstack.serving.rollout_controller.lease import ANN_MANAGED, ANN_WEBHOOK, LeaderElector
from mlstack.serving.rollout_controller.metrics import Metrics
from mlstack.serving.rollout_controller.reconciler import FIELD_MANAGER, Reconciler
from mlstack.serving.rollout_controller.webhook import DeliveryLog

log = logging.getLogger(__name__)
MIN_SECRET_LENGTH = 16


def default_identity() -> str:
    """client-go's habit: the host name (the pod's name) and a random suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def check_settings(settings: Settings) -> None:
    """Refuse to start without what the controller cannot work without."""
    cfg = settings.rollout
    secret = cfg.webhook_secret.get_secret_value() if cfg.webhook_secret else ""
    if len(secret) < MIN_SECRET_LENGTH:
        raise UsageError(
            f"rollout.webhook_secret must be at least {MIN_SECRET_LENGTH} characters "
            "(MLSTACK_ROLLOUT__WEBHOOK_SECRET; generate one with: head -c 32 /dev/urandom | base64)"
        )
    if not cfg.inference_services:
        raise UsageError(
            "rollout.inference_services is empty: name the InferenceServices to manage, "
            "e.g. MLSTACK_ROLLOUT__INFERENCE_SERVICES='[\"loan-default\"]'"
        )


class Controller:
    """One replica: Lease, queue, worker; ``start`` and ``stop`` bracket the HTTP server's life."""

    def __init__(self, settings: Settings, kube: Kube | None = None) -> None:
        check_settings(settings)
        cfg = settings.rollout
        self.settings = settings
        self.identity = cfg.identity or default_identity()
        self.kube = kube or Kube(
            namespace=cfg.namespace,
            field_manager=FIELD_MANAGER,
            user_agent=f"{FIELD_MANAGER}/{self.identity}",
        )
        self.secret = cfg.webhook_secret.get_secret_value().encode() if cfg.webhook_secret else b""
        self.metrics = Metrics()
        annotations = {ANN_MANAGED: ",".join(cfg.inference_services)}
        if cfg.webhook_url:
            annotations[ANN_WEBHOOK] = cfg.webhook_url
        self.elector = LeaderElector(
            self.kube,
            cfg.lease_name,
            self.identity,
            lease_seconds=cfg.lease_seconds,
            renew_deadline_seconds=cfg.renew_deadline_seconds,
            annotations=annotations,
        )
        self.reconciler = Reconciler(settings, self.kube, self.identity, self.metrics, self.elector.is_leader)
        self.deliveries = DeliveryLog(cfg.webhook_tolerance_seconds, cfg.dedup_entries)
        self.webhook_registered = False
        self._stop = threading.Event()
        self._registration_due = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        log.info(
            "rollout controller %s: namespace %s, services %s, lease %s, full reconcile every %.0f s",
            self.identity,
            self.kube.namespace,
            ", ".join(self.settings.rollout.inference_services),
            self.settings.rollout.lease_name,
            self.settings.rollout.resync_seconds,
        )
        for target, name in ((self._elect, "rollout-elector"), (self._work, "rollout-worker")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.elector.release()
        self.metrics.leader.set(0)

    # ------------------------------------------------------------------ the two loops

    def _elect(self) -> None:
        cfg = self.settings.rollout
        leading, next_resync = False, 0.0
        while not self._stop.is_set():
            now_leading = self.elector.try_acquire_or_renew()
            self.metrics.leader.set(1 if now_leading else 0)
            if now_leading and not leading:
                log.info("%s leads (lease %s)", self.identity, cfg.lease_name)
                self.webhook_registered = False
                self.reconciler.queue.clear()  # a full reconcile follows at once
                next_resync = 0.0
            elif leading and not now_leading:
                log.warning("%s no longer leads (holder: %s)", self.identity, self.elector.holder)
                self.reconciler.queue.clear()
            leading = now_leading
            if leading and time.monotonic() >= next_resync:
                if cfg.webhook_url:  # the worker does it: this loop must never block its renewals
                    self._registration_due.set()
                self.reconciler.enqueue_all("resync")
                self.metrics.last_full_reconcile.set_to_current_time()
                next_resync = time.monotonic() + cfg.resync_seconds
            self.metrics.queue_depth.set(len(self.reconciler.queue))
            self._stop.wait(min(cfg.lease_retry_seconds, max(0.05, next_resync - time.monotonic())))

    def _register_webhook(self, update_secret: bool) -> None:
        cfg = self.settings.rollout
        try:
            done = mlflow_webhooks.ensure(
                self.settings, cfg.webhook_name, str(cfg.webhook_url), self.secret.decode(), update_secret
            )
            self.webhook_registered = True
            self.metrics.registrations.labels(done.action).inc()
        except MlstackError as exc:  # the resync still works; try again at the next one
            self.metrics.registrations.labels("error").inc()
            log.warning("could not register the MLflow webhook: %s", exc)

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self.reconciler.queue.get(self._stop, timeout=1.0)
            # after the wait, before the reconcile: a resync queues its reconciles together with the
            # registration, and registering first means an alias change MLflow announces no webhook
            # for (made before the registration) is still seen by this resync, not the next one
            if self._registration_due.is_set() and self.elector.is_leader():
                self._registration_due.clear()
                # first time as leader: write the secret; at later resyncs repair drift only
                self._register_webhook(update_secret=not self.webhook_registered)
            if item is None:
                continue
            name, trigger, received = item
            if not self.elector.is_leader():
                continue  # the leader reconciles everything when it takes over
            try:
                self.reconciler.reconcile(name, trigger, received)
            except Exception:  # a bug must not stop the loop: log it, look again later
                log.exception("reconcile of %s failed", name)
                self.reconciler.queue.add(name, "retry", self.settings.rollout.retry_seconds)

    # ------------------------------------------------------------------ what the HTTP side asks

    def status(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "leader": self.elector.is_leader(),
            "holder": self.elector.holder,
            "lease": self.settings.rollout.lease_name,
            "namespace": self.kube.namespace,
            "webhook_registered": self.webhook_registered,
            "queue": len(self.reconciler.queue),
            "inference_services": {n: vars(s) for n, s in self.reconciler.services.items()},
        }
