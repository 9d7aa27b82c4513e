"""Issue 25, acceptance 1: `mlstack stream` SIGKILLed mid-batch three times loses and doubles nothing.

Real parts only: a Kafka 4.4.0 broker (KRaft, from the Maven jars), a real `mlflow server` holding a
version registered by the pipeline's register step (compiled ONNX behind its parity gate), the
`mlstack stream` command as a subprocess, the HTTP predictor (`mlstack serve`) for the same version,
and `mlstack drift` on the payload store the stream wrote.

Valid events (records, v1 named and positional, v2 matrix and per-feature tensors) and one hostile
event per dead-letter reason are produced in waves; after each of the first three waves the scorer is
SIGKILLed inside its fifth transaction, after that batch's records reached the broker and before the
commit (tests/fixtures/stream_killpoint.py), then started again with the same instance id. A read_committed reader must then see every valid event
answered exactly once, with the prediction the HTTP predictor gives for the same body, and every
hostile event in the dead-letter topic exactly once with its reason.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import orjson
import pytest

from mlstack.core.generator import loan_contract
from tests.conftest import ROOT
from tests.fixtures.serving import start_predictor
from tests.fixtures.stream import (
    Reader,
    feature_rows,
    hostile_events,
    produce,
    register_version,
    sigkill,
    start_stream,
    stored_pairs,
    stored_rows,
    valid_events,
)

FEATURES = loan_contract().feature_names
MAX_EVENT_BYTES = 20_000
WAVES = 4
KILLS = 3
KILL_AT_COMMIT = 5  # a wave is about 50 batches of 25: the kill lands inside one, mid-wave


def _http_answer(client: httpx.Client, url: str, name: str, body: dict) -> tuple[list[int], list[float]]:
    """What the HTTP predictor answers for the body an event carried."""
    if "inputs" in body:
        request = body | {"outputs": [{"name": "predict"}, {"name": "probability"}]}
        answer = client.post(f"{url}/v2/models/{name}/infer", json=request)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
        return outputs["predict"], outputs["probability"]
    instances = body["instances"] if "instances" in body else [body]
    request = {"instances": instances, "parameters": {"return_probabilities": True}}
    answer = client.post(f"{url}/v1/models/{name}:predict", json=request)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"], answer.json()["probabilities"]


def _stream_answer(value: bytes) -> tuple[list[int], list[float]]:
    body = orjson.loads(value)
    if "prediction" in body:
        return [body["prediction"]], [body["probability"]]
    if "outputs" in body:
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        return outputs["predict"], outputs["probability"]
    return body["predictions"], body["probabilities"]


def test_sigkill_mid_batch_three_times_scores_every_event_exactly_once(kafka_broker, mlflow_server, tmp_path):
    name = f"stream-eos-{uuid.uuid4().hex[:6]}"
    version = register_version(mlflow_server, name, seed=5)
    topics = {t: f"{name}.{t}" for t in ("features", "predictions", "dlq", "payloads")}
    store = tmp_path / "payloads"
    env = {
        "MLSTACK_TRACKING_URI": mlflow_server,
        "MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "MLSTACK_STREAM__MAX_EVENT_BYTES": str(MAX_EVENT_BYTES),
        "MLSTACK_STREAM__TOPIC_PARTITIONS": "3",
        "MLSTACK_STREAM__STORE_FLUSH_SECONDS": "0.5",
        "MLSTACK_STREAM__METRICS_PORT": "0",
    }
    args = ["--model", name, "--instance-id", "scorer-0", "--store", str(store)]
    args += ["--batch-max-events", "25", "--batch-max-wait-ms", "20"]
    rows = feature_rows(4000)
    valid = valid_events(rows, FEATURES, "ok")
    hostile = hostile_events(rows[0], FEATURES, "bad", MAX_EVENT_BYTES)
    per_wave = len(valid) // WAVES + 1
    waves = [valid[i * per_wave : (i + 1) * per_wave] for i in range(WAVES)]
    for index, event in enumerate(hostile):  # hostile events among the valid ones, in every wave
        waves[index % WAVES].insert(len(waves[index % WAVES]) // 2, event)
    home, log_path = tmp_path / "home", tmp_path / "stream.log"
    committed = Reader(kafka_broker.bootstrap, [topics["predictions"], topics["dlq"]])
    uncommitted = Reader(kafka_broker.bootstrap, [topics["predictions"]], committed=False)
    # each of the first KILLS incarnations SIGKILLs itself inside a transaction whose records the
    # broker already holds (a kill timed from outside raced the scorer and landed between batches)
    process = start_stream(home, log_path, env, *args, kill_at_commit=KILL_AT_COMMIT)
    kills = 0
    try:
        for wave in waves:
            produce(kafka_broker.bootstrap, topics["features"], wave)
            if kills < KILLS:
                status = process.wait(timeout=300)
                assert status == -signal.SIGKILL, log_path.read_text(errors="replace")[-3000:]
                kills += 1
                again = KILL_AT_COMMIT if kills < KILLS else None
                process = start_stream(home, log_path, env, *args, kill_at_commit=again)
        total = len(valid) + len(hostile)
        committed.wait_for(lambda: committed.count() >= total, timeout=300, process=process)
        committed.poll(3.0)  # anything beyond the expected count would be a duplicate: give it time to show
        uncommitted.poll(1.0)
        # let the store writer flush, then stop gracefully
        committed.wait_for(
            lambda: stored_rows(store) >= sum(e.rows for e in valid), timeout=120, process=process
        )
        process.terminate()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            sigkill(process)
        committed.close()
        uncommitted.close()
    log = log_path.read_text(errors="replace")
    assert kills == KILLS and log.count("scorer ready in") == KILLS + 1, log[-3000:]

    predictions = [r for r in committed.records if r[0] == topics["predictions"]]
    dead = [r for r in committed.records if r[0] == topics["dlq"]]
    # every valid event answered exactly once, by the champion, naming its input's coordinates
    keys = Counter(key for _, key, _, _ in predictions)
    assert sorted(keys.values()) == [1] * len(valid), [k for k, c in keys.items() if c > 1][:5]
    assert set(keys) == {e.key for e in valid}
    request_ids = {h["mlstack-request-id"] for *_, h in predictions}
    assert len(request_ids) == len(valid)
    assert {h["mlstack-variant"] for *_, h in predictions} == {b"champion"}
    assert {h["mlstack-model-version"] for *_, h in predictions} == {version.encode()}
    # every hostile event in the dead-letter topic exactly once, with its reason and coordinates
    reasons = {key: h["mlstack-dlq-reason"].decode() for _, key, _, h in dead}
    assert len(dead) == len(hostile) and reasons == {e.key: e.reason for e in hostile}
    assert all(h["mlstack-source-topic"] == topics["features"].encode() for *_, h in dead)
    # the kills landed mid-transaction: a read_uncommitted reader saw answers that were aborted
    assert uncommitted.count() > len(predictions)

    # the same prediction the HTTP predictor gives for the same body
    by_key = {e.key: e for e in valid}
    server = start_predictor(
        f"models:/{name}/{version}", "lean", tmp_path, name, {"MLSTACK_TRACKING_URI": mlflow_server}
    )
    try:
        with httpx.Client(timeout=60) as client:
            for _, key, value, _ in predictions:
                streamed, streamed_proba = _stream_answer(value)
                served, served_proba = _http_answer(client, server.url, name, by_key[key].body)
                assert streamed == served, key
                assert streamed_proba == pytest.approx(served_proba, rel=1e-12, abs=1e-15), key
    finally:
        server.stop()

    # the payload store holds each (request, row) once: raw files, no reader-side dedup
    pairs = stored_pairs(store)
    assert max(pairs.values()) == 1
    assert len(pairs) == sum(e.rows for e in valid)
    assert {r for r, _ in pairs} == {rid.decode() for rid in request_ids}
    # and the drift job runs on it unchanged
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "drift", "--model", name, "--version", version]
        + ["--window", "1h", "--store", str(store), "--json"],
        cwd=ROOT,
        env={
            **__import__("os").environ,
            "MLSTACK_HOME": str(tmp_path / "drift-home"),
            "MLSTACK_TRACKING_URI": mlflow_server,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "ok" and result["rows"] == len(pairs), result
