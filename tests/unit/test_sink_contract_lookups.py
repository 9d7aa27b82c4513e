"""Registry lookups run in the background, never in the flush.

The real ``Sink`` and ``ContractCache``; the registry call itself (``lookup``, the one outside
boundary) blocks until the test releases it, as a registry that hangs would.
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson

from mlstack.core import payload
from mlstack.core.generator import generate, loan_contract
from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE, parse_event
from mlstack.serving.sink.state import Sink

CONTRACT = loan_contract()
ROW = [None if v != v else v for v in generate(1, seed=4)[CONTRACT.feature_names].iloc[0].tolist()]


def _pair(ce_id: str, version: str):
    headers = {"ce-id": ce_id, "ce-inferenceservicename": "loans", "ce-namespace": "ml"}
    request = parse_event(
        headers | {"ce-type": REQUEST_TYPE},
        orjson.dumps({"instances": [ROW]}, option=orjson.OPT_SERIALIZE_NUMPY),
    )
    response = parse_event(
        headers | {"ce-type": RESPONSE_TYPE},
        orjson.dumps({"predictions": [1], "model_name": "loans", "model_version": version}),
    )
    return request, response


async def _flush_when_looked_up(sink: Sink) -> int:
    deadline = time.monotonic() + 30
    while sink.contracts.pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return await sink.flush()


def test_a_registry_that_hangs_never_stalls_the_flush(tmp_path):
    """200 pairs across 200 versions, every lookup hanging: the flush returns at once, the pairs
    wait (bounded) for their contracts, and once the registry answers they are written under the
    contract's names (today's code: the flush waits for each version's lookup in turn, here forever)."""
    release = threading.Event()
    threads: set[str] = set()

    def lookup(model: str, version: str):
        threads.add(threading.current_thread().name)
        release.wait(60)
        return CONTRACT

    cache = ContractCache(lookup, retry_seconds=0)
    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), contracts=cache)

    async def scenario():
        for i in range(200):
            for event in _pair(f"id-{i}", str(i + 1)):
                await sink.accept(event)
        try:
            first = await asyncio.wait_for(sink.flush(), timeout=30)
        finally:
            release.set()  # a flush stuck on the registry fails here, not in a thread that never ends
        deadline = time.monotonic() + 30
        while cache.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return first, await sink.flush()

    first, second = asyncio.run(scenario())
    assert (first, second) == (0, 200)
    assert threads and all(name.startswith("contract-lookup") for name in threads), threads
    rows = payload.read_partitioned(str(tmp_path / "store" / "predictions"), ["model_version"])
    assert len(rows) == 200 and "age" in rows.columns and "input_0" not in rows.columns
    sink.close()


def test_a_pair_waits_for_its_contract_at_most_contract_wait_seconds(tmp_path):
    release = threading.Event()
    cache = ContractCache(lambda m, v: release.wait(60) and CONTRACT)
    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), contracts=cache, contract_wait_seconds=0.3)

    async def scenario():
        for event in _pair("id-0", "1"):
            await sink.accept(event)
        await asyncio.sleep(0.4)
        return await sink.flush()

    try:
        assert asyncio.run(scenario()) == 1  # written without names: load_window names them later
    finally:
        release.set()
    sink.close()


def test_contracts_looked_up_as_events_arrive_name_the_rows_of_the_first_flush(tmp_path):
    calls: list[str] = []

    def lookup(model: str, version: str):
        calls.append(threading.current_thread().name)
        time.sleep(0.05)  # a registry round trip
        return CONTRACT

    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), contracts=ContractCache(lookup))

    async def scenario():
        for i in range(20):
            for event in _pair(f"id-{i}", str(i % 5 + 1)):
                await sink.accept(event)
        return await sink.flush(), await _flush_when_looked_up(sink)

    first, later = asyncio.run(scenario())
    assert first + later == 20
    rows = payload.read_partitioned(str(tmp_path / "store" / "predictions"), ["model_version"])
    assert "age" in rows.columns and "input_0" not in rows.columns
    assert len(calls) == 5  # one lookup per version, not per pair or per flush
    sink.close()
