"""Adaptive batching: concurrent requests share one model call and each gets its own rows back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mlstack.serving.batching import Batcher

FEATURES = ["a", "b"]


class Model:
    """Records every call; a row's 'probability' is its value of ``a`` so slices can be checked."""

    def __init__(self, fail: bool = False):
        self.calls: list[int] = []
        self.fail = fail

    def __call__(self, columns):
        self.calls.append(len(columns["a"]))
        if self.fail:
            raise RuntimeError("model broke")
        return np.asarray(columns["a"], dtype=float)


def _request(values):
    return {"a": list(values), "b": [None] * len(values)}, len(values)


async def _gather(batcher, requests):
    return await asyncio.gather(*(batcher.probabilities(*_request(r)) for r in requests))


def test_concurrent_single_rows_share_one_call():
    model = Model()
    batcher = Batcher(model, FEATURES, max_rows=32, max_wait_s=0.05)
    answers = asyncio.run(_gather(batcher, [[i] for i in range(5)]))
    assert model.calls == [5]
    assert [a.tolist() for a in answers] == [[0.0], [1.0], [2.0], [3.0], [4.0]]


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_next():
    model = Model()
    batcher = Batcher(model, FEATURES, max_rows=4, max_wait_s=0.05)
    answers = asyncio.run(_gather(batcher, [[1, 2], [3, 4], [5], [6, 7, 8, 9, 10]]))
    # 2 + 2 rows fill the first batch; the 5-row request is scored alone; [5] waits and goes last
    assert sorted(model.calls) == [1, 4, 5]
    assert [a.tolist() for a in answers] == [[1, 2], [3, 4], [5], [6, 7, 8, 9, 10]]


def test_a_model_error_reaches_every_waiting_request():
    batcher = Batcher(Model(fail=True), FEATURES, max_rows=32, max_wait_s=0.01)

    async def run():
        return await asyncio.gather(
            *(batcher.probabilities(*_request([i])) for i in range(3)), return_exceptions=True
        )

    results = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in results)


@pytest.mark.parametrize("wait", [0.0, 0.002])
def test_a_lone_request_is_answered_after_the_wait(wait):
    model = Model()
    batcher = Batcher(model, FEATURES, max_rows=32, max_wait_s=wait)
    (answer,) = asyncio.run(_gather(batcher, [[7]]))
    assert answer.tolist() == [7.0] and model.calls == [1]
