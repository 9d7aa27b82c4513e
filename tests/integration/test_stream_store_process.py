"""`mlstack stream-store`: the payload store writer in a process of its own, as the chart runs it.

The chart runs `mlstack stream --no-store-writer` and `mlstack stream-store` as two containers of
one pod, so the writer's Parquet flushes never pause scoring (the scorer's p99,
bench/results/stream.md). Real parts only: a Kafka 4.4.0 broker, a real `mlflow server`, both
commands as subprocesses. The writer starts before the scorer has created a topic (containers start
in any order); it is SIGKILLed once after it has written files while events flow, and started again;
SIGTERM then writes what it holds and exits 0. The store must hold every scored row exactly once,
the scorer must have written none itself, and the writer's /metrics must count what it wrote.
"""

from __future__ import annotations

import signal
import uuid

from mlstack.core.generator import loan_contract
from mlstack.core.procs import free_port
from tests.fixtures.scrape import metric_sum
from tests.fixtures.stream import (
    Reader,
    feature_rows,
    produce,
    register_version,
    sigkill,
    start_stream,
    stored_pairs,
    stored_rows,
    valid_events,
)

FEATURES = loan_contract().feature_names
WAVES = 3


def test_the_writer_process_stores_every_row_once_across_a_kill(kafka_broker, mlflow_server, tmp_path):
    name = f"stream-store-{uuid.uuid4().hex[:6]}"
    register_version(mlflow_server, name, seed=7)
    store = tmp_path / "payloads"
    env = {
        "MLSTACK_TRACKING_URI": mlflow_server,
        "MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "MLSTACK_STREAM__TOPIC_PARTITIONS": "3",
        "MLSTACK_STREAM__STORE_FLUSH_SECONDS": "0.5",
        "MLSTACK_STREAM__METRICS_PORT": "0",
    }
    common = ["--model", name, "--instance-id", "scorer-0", "--store", str(store)]
    metrics_port = free_port()
    writer_args = [*common, "--metrics-port", str(metrics_port)]
    rows = feature_rows(1500)
    valid = valid_events(rows, FEATURES, "ok")
    per_wave = len(valid) // WAVES + 1
    waves = [valid[i * per_wave : (i + 1) * per_wave] for i in range(WAVES)]
    home = tmp_path / "home"
    writer_log, scorer_log = tmp_path / "store.log", tmp_path / "stream.log"
    predictions = Reader(kafka_broker.bootstrap, [f"{name}.predictions"])
    writer = start_stream(home, writer_log, env, *writer_args, command_name="stream-store")
    scorer = start_stream(home, scorer_log, env, *common, "--no-store-writer")
    answered = 0
    try:
        for index, wave in enumerate(waves):
            produce(kafka_broker.bootstrap, f"{name}.features", wave)
            answered += len(wave)
            predictions.wait_for(lambda n=answered: predictions.count() >= n, timeout=180, process=scorer)
            if index == 0:  # files written, then a SIGKILL while the next waves are scored
                predictions.wait_for(lambda: stored_rows(store) > 0, timeout=60, process=writer)
                sigkill(writer)
            if index == 1:
                writer = start_stream(home, writer_log, env, *writer_args, command_name="stream-store")
        expected = sum(e.rows for e in valid)
        predictions.wait_for(lambda: stored_rows(store) >= expected, timeout=120, process=writer)
        counted = metric_sum(
            f"http://127.0.0.1:{metrics_port}/metrics",
            "mlstack_stream_store_rows_total",
            topic=f"{name}.payloads",
        )
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=60) == 0, writer_log.read_text(errors="replace")[-3000:]
        scorer.terminate()
        assert scorer.wait(timeout=60) == 0, scorer_log.read_text(errors="replace")[-3000:]
    finally:
        for process in (writer, scorer):
            if process.poll() is None:
                sigkill(process)
        predictions.close()

    pairs = stored_pairs(store)
    assert max(pairs.values()) == 1 and len(pairs) == expected
    request_ids = {h["mlstack-request-id"].decode() for *_, h in predictions.records}
    assert {request for request, _ in pairs} == request_ids
    # the restarted writer counted the rows it wrote itself (the first one's went with its kill)
    assert 0 < counted <= expected
    assert writer_log.read_text().count("store writer ready") == 2
    assert "store writer:" not in scorer_log.read_text()  # the scorer wrote nothing itself
