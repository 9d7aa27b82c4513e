"""Hostile events against a real sink process (black box: runs on any sink version).

Names that would leave the store, odd CloudEvent times, bad labels and values, and more waiting
halves than the bound: each is refused or contained, and nothing already stored is harmed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import orjson

from mlstack.core import payload, storage
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.fixtures.serving import start_sink


def _headers(ce_id: str, kind: str, isvc: str = "loans", **extra) -> dict[str, str]:
    return {
        "ce-id": ce_id,
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-specversion": "1.0",
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": isvc,
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "content-type": "application/json",
    } | extra


def _pair(client, url, ce_id, instances, predictions, version="1", **extra) -> tuple[int, int]:
    request = client.post(
        url, headers=_headers(ce_id, "request", **extra), content=orjson.dumps({"instances": instances})
    )
    body = {"predictions": predictions, "model_name": "loans", "model_version": version}
    response = client.post(url, headers=_headers(ce_id, "response", **extra), content=orjson.dumps(body))
    return request.status_code, response.status_code


def _files_with(root: Path, token: str) -> list[str]:
    return [str(p) for p in root.rglob(f"*{token}*")]


def test_names_that_would_leave_the_store_are_refused(tmp_path):
    token = uuid.uuid4().hex[:10]
    store = tmp_path / "deep" / "store"
    sink = start_sink(str(store), tmp_path / "wal", tmp_path / "sink.log")
    try:
        with httpx.Client(timeout=60) as client:
            for isvc in (f"../../../escape-{token}", f"/tmp/abs-{token}", f"..%2f{token}", f"UP-{token}"):
                answer = client.post(
                    sink.url, headers=_headers("a1", "request", isvc), content=b'{"instances": [[1]]}'
                )
                assert answer.status_code == 400, (isvc, answer.text)
                assert answer.json()["field"] == "ce-inferenceservicename"
            assert (
                client.post(
                    sink.url, headers=_headers("a2", "request"), content=b'{"instances": [[1]]}'
                ).status_code
                == 200
            )
            evil = {"predictions": [1], "model_name": "loans", "model_version": f"../../../v-{token}"}
            answer = client.post(sink.url, headers=_headers("a2", "response"), content=orjson.dumps(evil))
            assert answer.status_code == 400 and answer.json()["field"] == "body.model_version"
            answer = client.post(
                sink.url,
                headers=_headers("a3", "request", **{"ce-namespace": "../x"}),
                content=b'{"instances": [[1]]}',
            )
            assert answer.status_code == 400 and answer.json()["field"] == "ce-namespace"
    finally:
        sink.stop()
    assert _files_with(tmp_path, token) == [] and _files_with(Path("/tmp"), f"abs-{token}") == []


def test_an_odd_ce_time_never_stalls_the_flush(tmp_path):
    store = str(tmp_path / "store")
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log")
    try:
        with httpx.Client(timeout=60) as client:
            far = {"ce-time": "9999-12-31T23:59:59Z"}
            assert _pair(client, sink.url, "future", [[1]], [1], **far) == (200, 200)
            for i in range(5):
                assert _pair(client, sink.url, f"later-{i}", [[i]], [0]) == (200, 200)
            odd = client.post(
                sink.url,
                headers=_headers("year-one", "request", **{"ce-time": "0001-01-01T00:00:00+05:00"}),
                content=b'{"instances": [[1]]}',
            )
            assert odd.status_code == 400 and odd.json()["field"] == "ce-time"
            assert client.get(f"{sink.url}/healthz").status_code == 200
    finally:
        sink.stop()
    rows = payload.read_partitioned(
        storage.join(store, "predictions"), ["inference_service", "model_version", "date", "hour"]
    )
    assert rows is not None
    assert sorted(rows["request_id"]) == ["future", *[f"later-{i}" for i in range(5)]]
    assert rows.set_index("request_id").loc["future", "ce_time_replaced"] == "9999-12-31T23:59:59Z"


def test_bad_labels_and_values_cannot_poison_later_reads(tmp_path):
    store = str(tmp_path / "store")
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log")
    try:
        with httpx.Client(timeout=60) as client:
            assert _pair(client, sink.url, "one", [{"age": 40}], [1]) == (200, 200)
            assert _pair(client, sink.url, "two", [{"age": 41}, {"age": 42}], [0, 1]) == (200, 200)
            feedback = f"{sink.url}/feedback"
            assert client.post(feedback, json={"request_id": "one", "label": 1}).status_code == 200
            for label in ("maybe", 7, -1.5):
                answer = client.post(feedback, json={"request_id": "two", "label": label})
                assert answer.status_code == 400 and answer.json()["rule"] == "invalid_label", label
            answer = client.post(feedback, json={"request_id": "two", "label": 0, "row_index": 5})
            assert answer.status_code == 400 and answer.json()["rule"] == "row_out_of_range"
            answer = client.post(feedback, json={"request_id": "never-logged", "label": 1})
            assert answer.status_code == 200 and answer.json()["orphans"] == 1
            # a logged request with text where a number belongs, in its own flush
            assert _pair(client, sink.url, "three", [{"age": "sixty"}], [1]) == (200, 200)
            assert (
                client.post(feedback, json={"request_id": "two", "label": "true", "row_index": 1}).status_code
                == 200
            )
    finally:
        sink.stop()
    window = payload.load_window(store, "loans")  # the reader unifies; nothing raises
    assert sorted(window["request_id"]) == ["one", "three", "two", "two"]
    labels = window.set_index(["request_id", "row_index"])["label"]
    assert labels[("one", 0)] == "1" and labels[("two", 1)] == "true"


def test_waiting_halves_are_capped_and_disagreeing_pairs_kept(tmp_path):
    store = str(tmp_path / "store")
    env = {"MLSTACK_SINK__MAX_PENDING_BYTES": str(1_000_000)}
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log", env_extra=env)
    big = orjson.dumps({"instances": [[1.0]] * 20_000})  # ~120 kB each
    statuses = []
    try:
        with httpx.Client(timeout=60) as client:
            for i in range(30):
                statuses.append(client.post(sink.url, headers=_headers(f"big-{i}", "request"), content=big))
            refused = [r for r in statuses if r.status_code == 503]
            assert 0 < len(refused) < 30 and all(r.headers.get("retry-after") for r in refused)
            assert refused[0].json()["rule"] == "backpressure"
            # a partner of a waiting half is still taken: it frees memory
            answer = client.post(
                sink.url,
                headers=_headers("big-0", "response"),
                content=b'{"predictions": [1], "model_version": "1"}',
            )
            assert answer.status_code == 200
            assert _pair(client, sink.url, "counts", [[1], [2]], [1]) == (200, 200)
    finally:
        sink.stop()
    kept = [
        orjson.loads(line)
        for path in Path(store, "unpaired").rglob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert {(e["id"], e["reason"]) for e in kept if e["id"] == "counts"} == {("counts", "pair_mismatch")}
    assert os.path.exists(store)
