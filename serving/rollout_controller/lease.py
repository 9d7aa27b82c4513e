"""Leader election on a Kubernetes Lease (coordination.k8s.io/v1), so two replicas never act at once.

The algorithm is client-go's (k8s.io/client-go@v0.34.0 tools/leaderelection/leaderelection.go
``tryAcquireOrRenew`` and ``release``), on the same Lease fields (holderIdentity,
leaseDurationSeconds, acquireTime, renewTime, leaseTransitions):

- no Lease: create it holding it; a create that loses the race gets 409 and stays a follower;
- someone else holds it: wait until the record has not changed for its leaseDurationSeconds,
  measured on *this* replica's clock from when it saw the record change (no trust in other
  clocks), then take it over with an update carrying the resourceVersion read (409: lost);
- the holder renews every ``retry_seconds`` and stops acting once ``renew_deadline_seconds`` have
  passed since its last successful renewal, which is shorter than the lease duration, so a holder
  that lost contact has stopped before anyone else may start;
- on shutdown the holder releases it (holder cleared, duration 1 s) so a successor starts at once.

The holder also writes which InferenceServices it manages into an annotation of the Lease, which
``kubectl model status`` reads (the Lease, not the InferenceService: KServe copies an
InferenceService's annotations and labels into the Knative revision template, v0.20.0
pkg/controller/v1beta1/inferenceservice/components/predictor.go ``buildObjectMeta``, so a marker
there would roll out a new revision).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlstack.adapters.kube import Conflict, Kube
from mlstack.core.errors import MlstackError
from mlstack.core.isvc import PREFIX

log = logging.getLogger(__name__)

ANN_MANAGED = PREFIX + "managed-inference-services"
ANN_WEBHOOK = PREFIX + "rollout-webhook-url"


def micro_time(when: datetime | None = None) -> str:
    """metav1.MicroTime as the API server writes it."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Hold or wait for the Lease ``name``; :meth:`is_leader` says whether this replica may act now."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        identity: str,
        *,
        lease_seconds: float,
        renew_deadline_seconds: float,
        annotations: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.name, self.identity = kube, name, identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline_seconds
        self.annotations = dict(annotations or {})
        self.clock = clock
        self.holder: str | None = None  # as last observed
        self._observed_raw: str | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self.transitions = 0

    def is_leader(self) -> bool:
        """True while this replica holds the Lease and renewed it within the renew deadline."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.renew_deadline

    def _record(self, holder: str, acquire: str, transitions: int, duration: float) -> dict[str, Any]:
        now = micro_time()
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, int(duration)),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        raw = json.dumps(spec, sort_keys=True)
        if raw != self._observed_raw:  # the record changed: its lease duration counts from now
            self._observed_raw, self._observed_at = raw, self.clock()
        self.holder = spec.get("holderIdentity") or None
        self.transitions = int(spec.get("leaseTransitions") or 0)

    def try_acquire_or_renew(self) -> bool:
        """One round of the election; returns :meth:`is_leader` afterwards. Errors are logged, not raised."""
        try:
            self._round()
        except Conflict:
            self._renewed_at = None  # someone else wrote it: act no more until a round says otherwise
            log.info("lease %s: another replica wrote it first", self.name)
        except MlstackError as exc:
            log.warning("lease %s: %s", self.name, exc)
        return self.is_leader()

    def _round(self) -> None:
        lease = self.kube.get_lease(self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "annotations": self.annotations},
                "spec": self._record(self.identity, "", 0, self.lease_seconds),
            }
            created = self.kube.create_lease(body)
            self._observe(created)
            self._renewed_at = self.clock()
            log.info("lease %s: created, %s leads", self.name, self.identity)
            return
        self._observe(lease)
        spec = lease.get("spec") or {}
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        mine = self.holder == self.identity
        if self.holder and not mine and self.clock() < self._observed_at + duration:
            self._renewed_at = None
            return
        if not mine:
            log.info("lease %s: held by %s, expired; taking it over", self.name, self.holder or "nobody")
        transitions = self.transitions if mine else self.transitions + 1
        acquire = spec.get("acquireTime", "") if mine else ""
        lease["spec"] = self._record(self.identity, acquire, transitions, self.lease_seconds)
        meta = lease.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations}
        updated = self.kube.update_lease(lease)
        self._observe(updated)
        self._renewed_at = self.clock()

    def release(self) -> None:
        """Give the Lease up if held (client-go ``release``): a successor need not wait it out."""
        if not self.is_leader():
            return
        self._renewed_at = None
        try:
            lease = self.kube.get_lease(self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = micro_time()
            # client-go writes HolderIdentity "" (omitted in JSON) and a 1 s duration
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "renewTime": now,
                "acquireTime": now,
                "leaseTransitions": lease["spec"].get("leaseTransitions", 0),
            }
            self.kube.update_lease(lease)
            log.info("lease %s: released by %s", self.name, self.identity)
        except MlstackError as exc:
            log.warning("lease %s: could not release: %s", self.name, exc)


def ownership(
    lease: dict[str, Any] | None, inference_service: str, now: datetime | None = None
) -> dict[str, Any]:
    """Whether a rollout controller manages ``inference_service``, from its Lease (``kubectl model status``).

    ``state``: ``active`` (listed, and the holder renewed within the lease duration), ``stale`` (listed,
    but no replica renewed in time: nothing reconciles it now), or ``-`` (not managed).
    """
    if lease is None:
        return {"state": "-"}
    managed = ((lease.get("metadata") or {}).get("annotations") or {}).get(ANN_MANAGED, "")
    if inference_service not in [n.strip() for n in managed.split(",")]:
        return {"state": "-"}
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or None
    renewed = spec.get("renewTime")
    age = None
    if renewed:
        age = (
            (now or datetime.now(UTC)) - datetime.fromisoformat(renewed.replace("Z", "+00:00"))
        ).total_seconds()
    fresh = holder is not None and age is not None and age <= float(spec.get("leaseDurationSeconds") or 0)
    return {
        "state": "active" if fresh else "stale",
        "lease": (lease.get("metadata") or {}).get("name"),
        "holder": holder,
        "renewed_seconds_ago": None if age is None else round(age, 1),
    }
