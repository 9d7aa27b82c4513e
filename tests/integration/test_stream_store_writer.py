"""The payload store writer: a range a killed writer had begun is rewritten exactly, so rows land once.

A real broker; the payload records are what the scorer produces (Arrow chunks from ``RowsBuilder``),
committed in one transaction and, after it, one aborted transaction whose rows must never be stored.
"""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pyarrow.parquet as pq

from mlstack.adapters import kafka
from mlstack.core import payload, storage
from mlstack.core.generator import loan_contract
from mlstack.serving.stream.payloads import RowsBuilder, decode, encode, store_frame
from mlstack.serving.stream.store_writer import StoreWriter
from tests.fixtures.stream import feature_rows

META = {"inference_service": "loans", "namespace": "ml", "model_name": "loans", "model_version": "3"}


def chunk(first_id: int, rows: list[dict]) -> bytes:
    contract = loan_contract()
    builder = RowsBuilder(contract, META)
    columns = {f: [r[f] for r in rows] for f in contract.feature_names}
    now = time.time_ns()
    builder.add_many(
        [f"features/0/{first_id + i}" for i in range(len(rows))],
        [(now, None)] * len(rows),
        columns,
        [0.25] * len(rows),
    )
    (value,) = encode(builder.table(now, 0.5))
    return value


def stored(store) -> list[tuple[str, str]]:
    out = []
    for path in sorted(store.rglob("*.parquet")):
        ids = pq.read_table(path, columns=["request_id"]).column("request_id").to_pylist()
        out.extend((path.name, i) for i in ids)
    return out


def test_a_pending_range_is_rewritten_exactly_and_aborted_rows_never_stored(kafka_broker, tmp_path):
    topic = f"payloads-{uuid.uuid4().hex[:6]}"
    access = kafka.KafkaAccess(bootstrap_servers=kafka_broker.bootstrap)
    kafka.ensure_topics(kafka.admin(access), [kafka.TopicSpec(topic, 1, 1)], create=True)
    rows = feature_rows(40)
    producer = kafka.producer(access, f"tx-{topic}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(4):  # offsets 0..3, ten rows each
        producer.produce(topic, chunk(n * 10, rows[n * 10 : n * 10 + 10]), b"k")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, chunk(900, rows[:5]), b"k")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, chunk(40, rows[:7]), b"k")
    producer.commit_transaction(30)
    store = tmp_path / "store"
    # a writer killed after step 1 and part of step 2: the intent says [0, 2], one file holds a stale
    # fragment of that range (as if a different, longer range had been written before the kill)
    progress = storage.join(str(store), "_stream", topic, "0.json")
    storage.write_bytes(progress, orjson.dumps({"next": 0, "pending": [0, 2]}))
    first = f"part-{topic}-0-{0:020d}-{2:020d}.parquet"
    stale = [decode(chunk(n * 10, rows[n * 10 : n * 10 + 10])) for n in range(3)]
    payload.write_predictions(str(store), store_frame(stale), part_name=first)  # the killed writer's files
    writer = StoreWriter(
        access, topic, str(store), f"store-{topic}", None, flush_rows=10_000, flush_seconds=0.5
    )
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and orjson.loads(storage.read_bytes(progress)).get("next", 0) < 8:
        time.sleep(0.2)
    writer.stop.set()
    thread.join(60)
    found = stored(store)
    ids = [i for _, i in found]
    assert sorted(ids) == sorted(
        [f"features/0/{i}" for i in range(40)] + [f"features/0/{40 + i}" for i in range(7)]
    )
    assert len(ids) == len(set(ids))  # once each; the aborted batch's features/0/900.. never
    names = {name for name, _ in found}
    assert first in names  # exactly the pending range, rewritten over the same files
    assert orjson.loads(storage.read_bytes(progress)) == {
        "next": 8,
        "pending": None,
    }  # 0-3 data, 4 commit marker, 5-6 aborted, 7 data
