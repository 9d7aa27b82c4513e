"""The sink's view of the registry: a model version's data contract, fetched once and cached.

A registered version's contract never changes, so a hit is kept for the life of the process; a
miss (registry down, version unknown, no mlstack metadata) is remembered for ``retry_seconds`` so
a burst of events does not hammer MLflow, then asked again. Without a contract the sink still
stores every row (positional values as ``input_<i>``); ``mlstack.core.payload.load_window`` names
them by contract order when its caller knows the contract.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mlstack.core.contract import DataContract

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], DataContract]


def registry_lookup(name: str, version: str) -> DataContract:
    from mlstack.core.model import registered_contract

    return registered_contract(name, version)


class ContractCache:
    """``get(model, version)`` → the contract or None, calling ``lookup`` at most once per retry period."""

    def __init__(
        self, lookup: Lookup | None = registry_lookup, retry_seconds: float = 60.0, max_entries: int = 1024
    ):
        self.lookup = lookup
        self.retry_seconds = retry_seconds
        self.max_entries = max_entries
        self._hits: dict[tuple[str, str], DataContract] = {}
        self._misses: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def get(self, model: str, version: str) -> DataContract | None:
        key = (model, version)
        if self.lookup is None or version == "unknown":
            return None
        with self._lock:
            if key in self._hits:
                return self._hits[key]
            if time.monotonic() - self._misses.get(key, -1e18) < self.retry_seconds:
                return None
        try:
            contract = self.lookup(model, version)
        except Exception as exc:  # the registry is an outside service: any failure is a miss
            log.warning(
                "no contract for %s version %s (%s); rows keep their given names", model, version, exc
            )
            with self._lock:
                if len(self._misses) >= self.max_entries:
                    self._misses.clear()
                self._misses[key] = time.monotonic()
            return None
        with self._lock:
            if len(self._hits) >= self.max_entries:
                self._hits.clear()
            self._hits[key] = contract
        return contract
