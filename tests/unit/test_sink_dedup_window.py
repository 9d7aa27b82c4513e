"""The sink remembers stored ce-ids for a window (default 24 h), not forever: memory and done.ids stay bounded.

Runs the real ``Sink`` on a temporary WAL and store; the clock is moved by patching ``time.time``.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from mlstack.serving.sink import state as sink_module
from mlstack.serving.sink import wal as wal_module
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE, parse_event
from mlstack.serving.sink.state import Sink

HOUR = 3600.0


class Clock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sink_module.time, "time", fake)  # the one `time` module both files import
    assert wal_module.time.time is fake
    return fake


def events(event_id: str):
    headers = {
        "ce-id": event_id,
        "ce-inferenceservicename": "loans",
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "ce-time": "2026-11-27T10:15:00Z",
    }
    request = parse_event(headers | {"ce-type": REQUEST_TYPE}, orjson.dumps({"instances": [{"age": 30}]}))
    response = parse_event(
        headers | {"ce-type": RESPONSE_TYPE},
        orjson.dumps({"predictions": [1], "model_name": "loans", "model_version": "1"}),
    )
    return request, response


async def store(sink: Sink, *ids: str) -> list[str]:
    answers = []
    for event_id in ids:
        for event in events(event_id):
            answers.append(await sink.accept(event))
    await sink.flush()
    return answers


def done_file_ids(tmp_path) -> set[str]:
    return {line.split(" ")[0] for line in (tmp_path / "wal" / "done.ids").read_text().splitlines()}


def new_sink(tmp_path) -> Sink:
    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), dedup_seconds=24 * HOUR)
    sink.recover()
    return sink


def test_ids_are_refused_within_the_window_and_forgotten_after_it(tmp_path, clock):
    async def scenario():
        sink = new_sink(tmp_path)
        assert await store(sink, "old-1", "old-2") == ["stored"] * 4
        clock.now += 2 * HOUR
        assert await store(sink, "old-1") == ["duplicate"] * 2  # inside the window
        clock.now += 23 * HOUR
        assert await store(sink, "new-1") == ["stored"] * 2  # this flush prunes the old ids
        assert set(sink.done) == {"new-1"}
        assert done_file_ids(tmp_path) == {"new-1"}
        # past the window an old id is new again: the documented limit of the dedup
        assert await store(sink, "old-2") == ["stored"] * 2
        sink.close()

    asyncio.run(scenario())


def test_a_restart_remembers_recent_ids_and_forgets_expired_ones(tmp_path, clock):
    async def first_life():
        sink = new_sink(tmp_path)
        await store(sink, "early")
        clock.now += 20 * HOUR
        await store(sink, "late")
        sink.close()

    async def second_life():
        sink = new_sink(tmp_path)
        assert set(sink.done) == {"late"}
        assert done_file_ids(tmp_path) == {"late"}
        assert await store(sink, "late") == ["duplicate"] * 2
        sink.close()

    asyncio.run(first_life())
    clock.now += 5 * HOUR  # "early" is 25 h old, "late" 5 h
    asyncio.run(second_life())


def test_ids_still_in_a_wal_segment_are_never_forgotten(tmp_path, clock):
    sink = new_sink(tmp_path)
    sink.wal.segment_ids[sink.wal.current] = {"in-segment"}
    kept = sink.wal.forget_before({"in-segment": 0.0, "expired": 0.0, "recent": clock.now}, clock.now - HOUR)
    assert kept == {"in-segment": 0.0, "recent": clock.now}
    assert done_file_ids(tmp_path) == {"in-segment", "recent"}
    sink.close()


def capped_sink(tmp_path, max_dedup_ids: int) -> Sink:
    sink = Sink(
        str(tmp_path / "store"), str(tmp_path / "wal"), dedup_seconds=24 * HOUR, max_dedup_ids=max_dedup_ids
    )
    sink.recover()
    return sink


def test_a_busy_sink_remembers_at_most_max_dedup_ids_the_oldest_forgotten_first(tmp_path, clock):
    """At 24 h a sink taking 1,000 predictions/s would remember 86 million ids (~20 GB) and be
    OOM-killed long before its window ends; the count bound keeps the newest ids only."""
    from mlstack.serving.sink import metrics as m

    async def scenario():
        sink = capped_sink(tmp_path, 1000)
        flushes = [[f"f{n}-{i}" for i in range(600)] for n in range(4)]
        for ids in flushes:
            clock.now += 1.0  # a busy second: nowhere near the 24 h window
            assert await store(sink, *ids) == ["stored"] * 2 * len(ids)
            assert len(sink.done) <= 1000
            assert done_file_ids(tmp_path) == set(sink.done)
            assert m.DEDUP_IDS._value.get() == len(sink.done)  # after every flush, not only a prune
        # the newest flush is remembered, the oldest forgotten (a retry that late is stored again)
        assert set(flushes[-1]) <= set(sink.done) and not set(flushes[0]) & set(sink.done)
        assert await store(sink, flushes[-1][0]) == ["duplicate"] * 2
        assert await store(sink, flushes[0][0]) == ["stored"] * 2
        assert m.DEDUP_WINDOW._value.get() <= 3.0  # how far back duplicates are refused now
        sink.close()

    asyncio.run(scenario())


def test_a_restart_with_a_smaller_bound_keeps_only_the_newest_ids(tmp_path, clock):
    async def first_life():
        sink = capped_sink(tmp_path, 100_000)
        for n in range(3):
            clock.now += 1.0
            await store(sink, *[f"f{n}-{i}" for i in range(500)])
        assert len(sink.done) == 1500
        sink.close()

    asyncio.run(first_life())
    sink = capped_sink(tmp_path, 1000)  # recover() reads done.ids, then applies the bound
    assert set(sink.done) == {f"f{n}-{i}" for n in (1, 2) for i in range(500)}  # the newest 1,000
    assert done_file_ids(tmp_path) == set(sink.done)
    sink.close()
