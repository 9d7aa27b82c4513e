"""Pure pieces of the payload path: safe names, the one label mapping, contract typing, the reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest

from mlstack.core import labels, names, payload
from mlstack.core.contract import Target
from mlstack.core.generator import generate, loan_contract
from mlstack.serving.contracts import ContractCache
from mlstack.serving.sink import events, pairing
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE, TimeWindow, event_time
from mlstack.serving.sink.state import Backpressure, Sink

CONTRACT = loan_contract()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("part", ["..", ".", "a/b", "", "x\\y", "nul\0"])
def test_safe_join_refuses_parts_that_leave_the_root(tmp_path, part):
    with pytest.raises(names.NameError_):
        names.safe_join(str(tmp_path), "predictions", part)


def test_safe_join_checks_s3_keys_and_symlinks_after_resolution(tmp_path):
    assert names.safe_join("s3://bucket/store", "a", "b.parquet") == "s3://bucket/store/a/b.parquet"
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "link").symlink_to(tmp_path)  # a link inside the store pointing out of it
    with pytest.raises(names.NameError_):
        names.safe_join(str(tmp_path / "store" / "link"), "..", "x")
    with pytest.raises(names.NameError_):
        names.check_label("Loans", "ce-inferenceservicename")
    assert names.check_version("12") == "12" and names.check_version("v1.2-rc_3") == "v1.2-rc_3"


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        (1, None, 1),
        ("0", None, 0),
        (True, None, 1),
        ("false", None, 0),
        (1.0, None, 1),
        (7, None, None),
        (-1.5, None, None),
        ("maybe", None, None),
        (None, None, None),
        ("malignant", Target(name="d", positive="malignant", classes=["benign", "malignant"]), 1),
        ("benign", Target(name="d", positive="malignant", classes=["benign", "malignant"]), 0),
        ("Benign", Target(name="d", positive="malignant", classes=["benign", "malignant"]), 0),
        ("other", Target(name="d", positive="malignant", classes=["benign", "malignant"]), None),
    ],
)
def test_one_label_mapping(value, target, expected):
    assert labels.to_binary(value, target) == expected


def test_type_value_follows_the_predictor_rule():
    age = CONTRACT.feature("age")
    assert pairing.type_value("40", age) == (40.0, False)
    assert pairing.type_value("sixty", age) == (None, True)
    assert pairing.type_value(True, age) == (None, True)
    assert pairing.type_value(41, age) == (41.0, False)
    region = CONTRACT.feature("region")
    assert pairing.type_value(3, region) == ("3", False)


def test_ce_time_outside_the_window_is_replaced_and_kept():
    window = TimeWindow(max_age_seconds=3600, max_future_seconds=60)
    assert event_time("9999-12-31T23:59:59Z", NOW, window) == (NOW.isoformat(), "9999-12-31T23:59:59Z")
    stamp, replaced = event_time((NOW - timedelta(minutes=5)).isoformat(), NOW, window)
    assert replaced is None and stamp == (NOW - timedelta(minutes=5)).isoformat()
    with pytest.raises(events.EventError):
        event_time("0001-01-01T00:00:00+05:00", NOW, window)


def _event(ce_id: str, kind: str, body: dict, size: int | None = None) -> events.Event:
    headers = {
        "ce-id": ce_id,
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-inferenceservicename": "loans",
    }
    return events.parse_event(headers, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))


def test_reader_names_positional_rows_by_contract_order(tmp_path):
    """Rows stored without a contract (input_0…) read back under the feature names."""
    rows = generate(3, seed=2)[CONTRACT.feature_names]
    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), contracts=ContractCache(lookup=None))

    async def scenario():
        values = [[None if v != v else v for v in row] for row in rows.itertuples(index=False)]
        await sink.accept(_event("p1", "request", {"instances": values}))
        await sink.accept(_event("p1", "response", {"predictions": [0, 1, 0], "model_version": "3"}))
        await sink.flush()
        sink.close()

    asyncio.run(scenario())
    raw = payload.read_partitioned(str(tmp_path / "store" / "predictions"), ["inference_service"])
    assert "input_0" in raw.columns and "age" not in raw.columns
    window = payload.load_window(str(tmp_path / "store"), "loans", contract=CONTRACT)
    assert window["age"].tolist() == rows["age"].astype(float).tolist()
    assert window["region"].tolist() == rows["region"].tolist()
    assert not any(c.startswith("input_") for c in window.columns)


def test_a_pair_the_store_refuses_is_quarantined_and_the_rest_stored(tmp_path, monkeypatch):
    sink = Sink(
        str(tmp_path / "store"), str(tmp_path / "wal"), contracts=ContractCache(lookup=lambda n, v: CONTRACT)
    )
    real = payload.write_predictions

    def refuse_bad(store, frame):
        if "bad" in set(frame["request_id"]):
            raise OSError("the store refused this object")
        return real(store, frame)

    monkeypatch.setattr(payload, "write_predictions", refuse_bad)
    row = {k: (None if v != v else v) for k, v in generate(1, seed=3)[CONTRACT.feature_names].iloc[0].items()}

    async def scenario():
        for ce_id in ("good", "bad"):
            await sink.accept(_event(ce_id, "request", {"instances": [row]}))
            await sink.accept(_event(ce_id, "response", {"predictions": [1], "model_version": "3"}))
        assert await sink.flush() == 1
        assert sink.flush_error is None and set(sink.done) == {"good", "bad"}
        sink.close()

    asyncio.run(scenario())
    stored = payload.load_window(str(tmp_path / "store"), "loans")
    assert stored["request_id"].tolist() == ["good"]
    kept = [
        orjson.loads(line)
        for p in (tmp_path / "store" / "quarantine").rglob("*.jsonl")
        for line in p.read_bytes().splitlines()
    ]
    assert sorted(e["id"] for e in kept) == ["bad", "bad"] and "store refused" in kept[0]["reason"]


def test_the_byte_cap_refuses_a_lonely_half_but_takes_a_partner(tmp_path):
    """Each held event counts as its body plus EVENT_OVERHEAD; a pair is held until its flush."""
    from mlstack.serving.sink.state import EVENT_OVERHEAD

    big = {"instances": [[1.0] * 300]}
    cost = len(orjson.dumps(big)) + EVENT_OVERHEAD
    sink = Sink(str(tmp_path / "store"), str(tmp_path / "wal"), max_pending_bytes=int(1.7 * cost))

    async def scenario():
        assert await sink.accept(_event("a", "request", big)) == "stored"
        with pytest.raises(Backpressure):
            await sink.accept(_event("b", "request", big))
        assert await sink.accept(_event("a", "response", {"predictions": [1]})) == "stored"
        assert sink.pending_bytes == 0
        with pytest.raises(Backpressure):  # the pair is still in memory until it is flushed
            await sink.accept(_event("b", "request", big))
        await sink.flush()
        assert sink.held_bytes == 0 and sink.held_events == 0
        assert await sink.accept(_event("b", "request", big)) == "stored"
        sink.close()

    asyncio.run(scenario())


def test_mixed_label_types_across_partitions_read_back(tmp_path):
    store = str(tmp_path)
    now = pd.Timestamp(datetime.now(UTC))
    for label in (1, "malignant", True):
        frame = pd.DataFrame({"request_id": ["r"], "row_index": [0], "label": [label], "received_at": [now]})
        payload.write_feedback(store, frame)
    feedback = payload.read_partitioned(str(tmp_path / "feedback"), ["date"])
    assert sorted(feedback["label"]) == ["1", "malignant", "true"]


class Crash(BaseException):
    """Stands for the process dying (SIGKILL) at one exact line: nothing after it runs."""


def test_a_crash_between_the_store_write_and_mark_done_repeats_nothing(tmp_path, monkeypatch):
    store, wal = str(tmp_path / "store"), str(tmp_path / "wal")
    row = {k: (None if v != v else v) for k, v in generate(1, seed=4)[CONTRACT.feature_names].iloc[0].items()}

    async def first_life():
        sink = Sink(store, wal)
        for ce_id in ("c1", "c2"):
            await sink.accept(_event(ce_id, "request", {"instances": [row]}))
            await sink.accept(_event(ce_id, "response", {"predictions": [1], "model_version": "3"}))

        def crash(*_args, **_kwargs):
            raise Crash

        monkeypatch.setattr(sink.wal, "mark_done", crash)
        with pytest.raises(Crash):
            await sink.flush()  # the Parquet is written, done.ids is not

    asyncio.run(first_life())
    assert len(payload.load_window(store, "loans")) == 2
    assert list((tmp_path / "wal").glob("intent-*.json"))  # the flush's intent survived the crash
    monkeypatch.undo()

    async def second_life():
        sink = Sink(store, wal)
        assert sink.recover() == 0  # the intent's ids are found in the store: nothing replayed
        assert set(sink.done) == {"c1", "c2"}
        assert await sink.accept(_event("c1", "request", {"instances": [row]})) == "duplicate"
        assert await sink.flush() == 0
        sink.close()

    asyncio.run(second_life())
    raw = payload.read_partitioned(str(tmp_path / "store" / "predictions"), ["inference_service"])
    assert sorted(raw["request_id"]) == ["c1", "c2"]  # each stored exactly once
    assert not list((tmp_path / "wal").glob("intent-*.json"))
