"""The sink's view of the registry: model versions' data contracts, looked up in the background.

A registered version's contract never changes, so a hit is kept for the life of the process (the
least recently used beyond ``max_entries`` are dropped). Lookups run on a small thread pool, never
on the flush path: the sink asks for a version's contract as soon as a response names it
(``prefetch``), and a flush takes what is there, waiting at most until its own deadline for lookups
already under way (``get(..., until=)``): 1,000 new versions cost one deadline, not 1,000 lookups in
a row. A miss (version unknown, no mlstack metadata, registry down) is remembered for
``retry_seconds`` and then asked again in the background.

Without a contract the sink still stores every row (positional values as ``input_<i>``);
``mlstack.core.payload.load_window`` names them by contract order when its caller knows the
contract. Whether the registry answers is visible: ``registry`` here, the ``/healthz`` body, and the
metrics ``mlstack_sink_registry_up`` and ``mlstack_sink_contract_lookups_total{outcome}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from mlstack.core.contract import DataContract

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], DataContract]
# MLflow error codes that prove the registry answered (mlflow/protos/databricks.proto at 3.17.2)
ANSWERED = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST"}


def registry_answered(exc: BaseException) -> bool:
    """Whether a failed lookup reached the registry (the version is unknown or has no contract)
    rather than failing to reach it (connection refused, timeout, 401/403, 5xx)."""
    cause: BaseException | None = exc
    while cause is not None:
        code = getattr(cause, "error_code", None)
        if code is not None:
            return code in ANSWERED
        if "has no mlstack_contract metadata" in str(cause):
            return True
        cause = cause.__cause__
    return False


@dataclass
class RegistryState:
    """What the sink knows about the registry, for ``/healthz`` and the metrics."""

    up: bool | None = None  # None until the first lookup or probe came back
    error: str | None = None  # the last failure to reach it
    failures: int = 0  # lookups that could not reach it, since start
    since: float | None = None  # unix time of the first failure of the current outage

    def to_dict(self) -> dict[str, Any]:
        status = "unknown" if self.up is None else "reachable" if self.up else "unreachable"
        return {"registry": status, "registry_error": self.error, "registry_failures": self.failures}


class ContractCache:
    """``get(model, version)`` → the contract or None; lookups in the background, at most one at a time per key.

    ``lookup`` is the registry's (``Mlflow.registered_contract``); None: no registry, no contracts.
    """

    def __init__(
        self,
        lookup: Lookup | None,
        retry_seconds: float = 60.0,
        max_entries: int = 4096,
        workers: int = 8,
        on_outcome: Callable[[str], None] | None = None,
    ):
        self.lookup = lookup
        self.retry_seconds = retry_seconds
        self.max_entries = max_entries
        self.registry = RegistryState()
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._hits: OrderedDict[tuple[str, str], DataContract] = OrderedDict()
        self._misses: dict[tuple[str, str], float] = {}
        self._inflight: dict[tuple[str, str], Future[DataContract | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="contract-lookup")
        self._check: Callable[[], None] | None = None
        self._probed_at = 0.0

    def prefetch(self, model: str, version: str) -> None:
        """Start a lookup unless the contract is known, under way, or missed less than retry_seconds ago."""
        self._future(model, version)

    def get(self, model: str, version: str, until: float | None = None) -> DataContract | None:
        """The contract when known; else None at once, or when a lookup under way finishes by ``until``
        (a ``time.monotonic()`` deadline) its answer."""
        future = self._future(model, version)
        if future is None:
            with self._lock:
                hit = self._hits.get((model, version))
                if hit is not None:
                    self._hits.move_to_end((model, version))
                return hit
        if until is None:
            return None
        try:
            return future.result(timeout=max(0.0, until - time.monotonic()))
        except (FutureTimeout, Exception):
            return None

    def _future(self, model: str, version: str) -> Future[DataContract | None] | None:
        """The lookup under way for the key (started here when due); None when none is due."""
        key = (model, version)
        if self.lookup is None or version == "unknown":
            return None
        with self._lock:
            if key in self._hits:
                return None
            if key in self._inflight:
                return self._inflight[key]
            if time.monotonic() - self._misses.get(key, -1e18) < self.retry_seconds:
                return None
            future = self._pool.submit(self._lookup, key)
            self._inflight[key] = future
            return future

    def _lookup(self, key: tuple[str, str]) -> DataContract | None:
        assert self.lookup is not None  # _future starts no lookup without one
        try:
            contract = self.lookup(*key)
        except Exception as exc:  # the registry is an outside service: any failure is a miss
            answered = registry_answered(exc)
            self._note(answered, exc)
            log.warning(
                "no contract for %s version %s (%s); rows keep their given names", key[0], key[1], exc
            )
            with self._lock:
                del self._inflight[key]
                if len(self._misses) >= self.max_entries:
                    self._misses.clear()
                self._misses[key] = time.monotonic()
            self._on_outcome("not_found" if answered else "registry_error")
            return None
        self._note(True, None)
        with self._lock:
            del self._inflight[key]
            self._misses.pop(key, None)
            self._hits[key] = contract
            while len(self._hits) > self.max_entries:
                self._hits.popitem(last=False)
        self._on_outcome("found")
        return contract

    def probe(self, check: Callable[[], None]) -> None:
        """Run ``check`` (a cheap registry call) in the background and record whether it answered;
        ``reprobe`` runs it again while the registry does not answer."""
        self._check, self._probed_at = check, time.monotonic()

        def run() -> None:
            try:
                check()
            except Exception as exc:
                self._note(registry_answered(exc), exc)
            else:
                self._note(True, None)

        self._pool.submit(run)

    def reprobe(self) -> None:
        """Probe again when the registry did not answer and ``retry_seconds`` passed (the sink's loop calls it)."""
        if self._check is not None and self.registry.up is False:
            if time.monotonic() - self._probed_at >= self.retry_seconds:
                self.probe(self._check)

    def _note(self, reached: bool, exc: BaseException | None) -> None:
        state = self.registry
        with self._lock:
            if reached:
                if state.up is False:
                    log.warning("the registry answers again after %d failed lookups", state.failures)
                state.up, state.error, state.since = True, None, None
                return
            state.failures += 1
            state.error = f"{type(exc).__name__}: {exc}"[:300]
            if state.up is not False:
                state.since = time.time()
            state.up = False
        log.warning(
            "the registry cannot be reached (%d failed lookups so far): %s; rows of versions it would "
            "name are stored with their given names (positional inputs as input_<i>)",
            state.failures,
            state.error,
        )

    def looking_up(self, model: str, version: str) -> bool:
        """Whether a lookup of this version is under way."""
        with self._lock:
            return (model, version) in self._inflight

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
