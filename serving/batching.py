"""Adaptive batching: concurrent requests on one event loop share one model call.

A request whose rows passed the contract's fast check waits at most ``max_wait_s`` for company;
the batch is scored as soon as it holds ``max_rows`` rows or the wait is over, and each request
gets its own slice back. Larger requests, and ones that needed the slow contract check, are scored
alone. One model call per batch is what MLServer (``max_batch_size``/``max_batch_time``), Triton
and BentoML offer; whether it pays is measured (bench/serving_bench.py), not assumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    columns: dict[str, list[Any]]
    rows: int
    future: asyncio.Future[np.ndarray]


class Batcher:
    """Collects requests' columns and scores them together with ``score(columns) -> probabilities``."""

    def __init__(
        self,
        score: Callable[[dict[str, list[Any]]], np.ndarray],
        features: list[str],
        max_rows: int,
        max_wait_s: float,
    ):
        self.score, self.features = score, features
        self.max_rows, self.max_wait_s = max_rows, max_wait_s
        self._pending: list[_Pending] = []
        self._rows = 0
        self._timer: asyncio.TimerHandle | None = None

    async def probabilities(self, columns: dict[str, list[Any]], rows: int) -> np.ndarray:
        """This request's probabilities, scored alone or with whoever arrives within the wait."""
        if rows >= self.max_rows:
            return self.score(columns)
        loop = asyncio.get_running_loop()
        if self._rows + rows > self.max_rows:
            self._flush()
        pending = _Pending(columns, rows, loop.create_future())
        self._pending.append(pending)
        self._rows += rows
        if self._rows >= self.max_rows:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await pending.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._rows = self._pending, [], 0
        if not batch:
            return
        merged = {name: [value for item in batch for value in item.columns[name]] for name in self.features}
        try:
            proba = self.score(merged)
        except Exception as exc:  # every waiter learns of it; the handler answers each one
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in batch:
            if not item.future.done():  # a client that went away cancels its future
                item.future.set_result(proba[start : start + item.rows])
            start += item.rows
