"""The payload sink as a real process: pairing, dedup, feedback, s3 (moto), and SIGKILL durability."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
import orjson
import pytest

from mlstack.core import generator, payload, storage
from mlstack.core.payload import load_window
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.conftest import free_port, wait_for_http
from tests.fixtures.serving import start_sink

FEATURES = generator.loan_contract().feature_names
ROWS = generator.generate(50, seed=21)[FEATURES]


def _event(i: int, kind: str, isvc: str = "loans") -> tuple[dict, bytes]:
    row = {k: (None if v != v else v) for k, v in ROWS.iloc[i % len(ROWS)].to_dict().items()}
    headers = {
        "ce-id": f"req-{i:05d}",
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-source": "http://localhost:9081/",
        "ce-specversion": "1.0",
        "ce-inferenceservicename": isvc,
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "content-type": "application/json",
    }
    if kind == "request":
        body = {"instances": [row]}
    else:
        body = {
            "predictions": [i % 2],
            "probabilities": [0.25],
            "model_name": isvc,
            "model_version": str(1 + i % 2),
        }
    return headers, orjson.dumps(body)


def _post(client: httpx.Client, url: str, i: int, kind: str) -> int:
    headers, body = _event(i, kind)
    return client.post(url, headers=headers, content=body).status_code


def _raw_prediction_rows(store: str):
    """Every stored row, duplicates included (load_window would drop them)."""
    keys = ["inference_service", "model_version", "date", "hour"]
    return payload.read_partitioned(storage.join(store, "predictions"), keys)


def test_pairs_dedup_feedback_and_refusals(tmp_path):
    store = str(tmp_path / "store")
    env = {"MLSTACK_SINK__PAIR_TIMEOUT_SECONDS": "1.5"}
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log", env_extra=env)
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(30):
                order = ["response", "request"] if i % 3 == 0 else ["request", "response"]
                for kind in order:
                    assert _post(client, sink.url, i, kind) == 200
            headers, body = _event(4, "request")
            duplicate = client.post(sink.url, headers=headers, content=body)
            assert duplicate.json() == {"status": "duplicate", "id": "req-00004"}
            bad = client.post(
                sink.url, headers={"ce-id": "x", "ce-inferenceservicename": "loans"}, content=b"{}"
            )
            assert bad.status_code == 400 and bad.json()["field"] == "ce-type"
            bad = client.post(sink.url, headers=_event(99, "request")[0], content=b"{nope")
            assert bad.status_code == 400 and bad.json()["rule"] == "invalid_json"
            # a response that cannot belong to its request: both kept under unpaired/ (docs/serving.md)
            request_headers, _ = _event(501, "request")
            waiting = client.post(sink.url, headers=request_headers, content=b'{"instances": [[1], [2]]}')
            assert waiting.status_code == 200
            response_headers, _ = _event(501, "response")
            mismatch = client.post(sink.url, headers=response_headers, content=b'{"predictions": [1]}')
            assert mismatch.status_code == 200
            request_headers, _ = _event(500, "request")
            assert (
                client.post(sink.url, headers=request_headers, content=b'{"instances": [[1]]}').status_code
                == 200
            )
            fb = client.post(
                f"{sink.url}/feedback",
                json=[{"request_id": "req-00001", "label": 1}, {"request_id": "req-00002", "label": 0}],
            )
            assert fb.status_code == 200 and fb.json() == {"stored": 2, "orphans": 0}
            fb = client.post(f"{sink.url}/feedback", json={"label": 1})
            assert fb.status_code == 400 and fb.json()["field"] == "[0].request_id"
            assert client.get(f"{sink.url}/healthz").status_code == 200
            assert "mlstack_sink_events_total" in client.get(f"{sink.url}/metrics").text
            time.sleep(2.5)  # past the pair timeout: the lone request moves to unpaired/
    finally:
        sink.stop()
    window = load_window(store, "loans")
    assert len(window) == 30 and window["request_id"].is_unique  # req-00500 never paired
    unpaired = (tmp_path / "store" / "unpaired").rglob("*.jsonl")
    kept = [orjson.loads(line) for path in unpaired for line in path.read_bytes().splitlines()]
    assert sorted((e["id"], e["kind"], e["reason"]) for e in kept) == [
        ("req-00500", "request", "no_partner"),
        ("req-00501", "request", "pair_mismatch"),
        ("req-00501", "response", "pair_mismatch"),
    ]
    assert sorted(window["model_version"].unique()) == ["1", "2"]
    assert window.set_index("request_id").loc["req-00001", "label"] == "1"
    assert window.set_index("request_id").loc["req-00005", "age"] == ROWS.iloc[5]["age"]
    assert len(_raw_prediction_rows(store)) == 30  # stored once, not deduplicated by the reader
    partitions = {p.name for p in (tmp_path / "store" / "predictions" / "inference_service=loans").iterdir()}
    assert partitions == {"model_version=1", "model_version=2"}


@pytest.fixture
def moto(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [str(os.path.join(os.path.dirname(os.sys.executable), "moto_server")), "-p", str(port)],
        stdout=open(tmp_path / "moto.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url, timeout=60, process=process)
    env = {
        "MLSTACK_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket="payloads")
    yield env
    process.terminate()
    process.wait(10)


def test_s3_store(tmp_path, moto, monkeypatch):
    store = "s3://payloads/log"
    sink = start_sink(store, tmp_path / "wal", tmp_path / "sink.log", env_extra=moto)
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(10):
                for kind in ("request", "response"):
                    assert _post(client, sink.url, i, kind) == 200
            assert (
                client.post(f"{sink.url}/feedback", json={"request_id": "req-00003", "label": 1}).status_code
                == 200
            )
    finally:
        sink.stop()
    for key, value in moto.items():
        monkeypatch.setenv(key, value)
    window = load_window(store, "loans")
    assert sorted(window["request_id"]) == [f"req-{i:05d}" for i in range(10)]
    assert window.set_index("request_id").loc["req-00003", "label"] == "1"


def test_sigkill_mid_stream_loses_and_repeats_nothing(tmp_path):
    """N events sent concurrently, kill -9 mid-stream, restart: every 2xx'd event stored exactly once."""
    pairs = 300
    store, wal = str(tmp_path / "store"), tmp_path / "wal"
    env = {"MLSTACK_SINK__FLUSH_ROWS": "40"}  # flushes happen during the stream, so the kill can hit one
    sink = start_sink(store, wal, tmp_path / "sink.log", env_extra=env)
    port = int(sink.url.rsplit(":", 1)[1])
    events = [(i, kind) for i in range(pairs) for kind in ("request", "response")]
    random.Random(5).shuffle(events)
    acked: set[tuple[int, str]] = set()
    killed = False

    def send(item):
        nonlocal killed
        try:
            with httpx.Client(timeout=10) as client:
                if _post(client, sink.url, *item) == 200:
                    acked.add(item)
        except httpx.HTTPError:
            pass
        if len(acked) >= len(events) // 2 and not killed:
            killed = True
            os.kill(sink.process.pid, signal.SIGKILL)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, events))
    sink.process.wait(10)
    assert killed and sink.process.returncode == -signal.SIGKILL
    assert len(events) // 2 <= len(acked) < len(events)

    # restart on the same WAL and store; the logger retries what was not acknowledged, plus a few
    # acknowledged events again (a retry whose answer was lost): those must be duplicates
    sink = start_sink(store, wal, tmp_path / "sink.log", env_extra=env, port=port)
    try:
        retry = [e for e in events if e not in acked]
        again = sorted(acked)[:25]
        with httpx.Client(timeout=30) as client:
            for item in retry:
                assert _post(client, sink.url, *item) == 200
            for item in again:
                headers, body = _event(*item)
                assert client.post(sink.url, headers=headers, content=body).json()["status"] == "duplicate"
    finally:
        sink.stop()
    stored = _raw_prediction_rows(store)
    counts = stored.groupby("request_id").size()
    assert (counts == 1).all(), counts[counts > 1]
    assert sorted(counts.index) == [f"req-{i:05d}" for i in range(pairs)]
    assert not (tmp_path / "store" / "unpaired").exists()
