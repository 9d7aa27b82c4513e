"""Issue 25, acceptance 2: a canary for a stream: 20 % of keys, then promote, then rollback, while events flow.

The moves are the ones `kubectl model canary|promote|rollback` makes in the registry: the rollout
module builds them from an InferenceService manifest and ``mlstack.adapters.model_aliases.apply``
sends them to a real `mlflow server` (the API-server half of those commands is tested in
test_kubectl_model.py). The scorer, a real `mlstack stream` process on a real Kafka broker, must
follow the aliases without a restart; a producer keeps sending events over 200 keys the whole time.
Afterwards a read_committed reader must see every produced event answered exactly once, keys in the
challenger's share answered by the challenger during each canary and by nobody else, no old version
after a promote in any partition, and `kubectl model analyze -f` on the local payload log must see
both variants.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from datetime import datetime

import orjson
import yaml

from mlstack.adapters import model_aliases
from mlstack.core import rollout
from mlstack.core.settings import Settings
from tests.conftest import ROOT
from tests.fixtures.kserve_recorded import recorded, without_status
from tests.fixtures.stream import Reader, feature_rows, register_version, start_stream

KEYS = [f"customer-{i}".encode() for i in range(200)]
PERCENT = 20


def in_challenger_share(key: bytes) -> bool:
    """The documented rule, restated: CRC-32 of the key bytes, mod 100, below the percent."""
    return zlib.crc32(key) % 100 < PERCENT


class Feeder(threading.Thread):
    """Produces events over KEYS at ~250/s until stopped; remembers each event's partition/offset."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.rows = topic, feature_rows(500, seed=21)
        self.stop, self.delivered, self.failed = threading.Event(), [], []

    def _report(self, error, message) -> None:
        (self.failed if error else self.delivered).append(
            (message.partition(), message.offset(), message.key())
        )

    def run(self) -> None:
        sent = 0
        while not self.stop.is_set():
            for _ in range(25):
                key = KEYS[sent % len(KEYS)]
                self.producer.produce(
                    self.topic, orjson.dumps(self.rows[sent % len(self.rows)]), key, on_delivery=self._report
                )
                sent += 1
            self.producer.poll(0.1)
        self.producer.flush(30)
        self.producer = None  # close it now, not when the broker is gone


def isvc_manifest(name: str) -> dict:
    """An InferenceService manifest for ``name``: the chart's, as KServe stored it (its status dropped)."""
    obj = without_status(recorded("stable"))
    obj["metadata"]["name"] = name
    obj["metadata"]["annotations"]["serving.mlstack.io/registered-model"] = name
    return obj


def test_canary_promote_rollback_while_events_flow(kafka_broker, mlflow_server, tmp_path):
    name = f"stream-canary-{uuid.uuid4().hex[:6]}"
    v1 = register_version(mlflow_server, name, seed=1)
    v2 = register_version(mlflow_server, name, seed=2, estimator="hist_gradient_boosting")
    v3 = register_version(mlflow_server, name, seed=3)
    settings = Settings(home=tmp_path / "registry-home", tracking_uri=mlflow_server)
    registry = model_aliases
    for alias in ("challenger", "previous"):  # registration made v2/v3 challengers: start from v1 alone
        if alias in registry.aliases(settings, name):
            from mlflow import MlflowClient

            MlflowClient(mlflow_server).delete_registered_model_alias(name, alias)
    store = tmp_path / "payloads"
    env = {
        "MLSTACK_TRACKING_URI": mlflow_server,
        "MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "MLSTACK_STREAM__TOPIC_PARTITIONS": "3",
        "MLSTACK_STREAM__REGISTRY_POLL_SECONDS": "1",
        "MLSTACK_STREAM__STORE_FLUSH_SECONDS": "0.5",
        "MLSTACK_STREAM__METRICS_PORT": "0",
    }
    topics = {t: f"{name}.{t}" for t in ("features", "predictions")}
    process = start_stream(
        tmp_path / "home", tmp_path / "stream.log", env, "--model", name, "--store", str(store)
    )
    reader = Reader(kafka_broker.bootstrap, [topics["predictions"]])
    obj = rollout.first_deploy(isvc_manifest(name), v1, f"s3://mlflow/{name}/1")
    feeder = Feeder(kafka_broker.bootstrap, topics["features"])

    def move(build) -> dict:
        """Build a move from the manifest and the registry's aliases, apply its registry half."""
        made = build(obj, registry.aliases(settings, name))
        registry.apply(settings, made.alias_ops)
        return made.result(obj)

    def answered_by(version: str, variant: str, at_least: int, since_ms: int) -> None:
        """Wait until ``at_least`` events produced after ``since_ms`` were answered by that variant."""
        wanted = (version.encode(), variant.encode())

        def seen() -> bool:
            return (
                sum(
                    1
                    for *_, h in reader.records
                    if (h["mlstack-model-version"], h["mlstack-variant"]) == wanted
                    and int(h["mlstack-source-timestamp"]) >= since_ms
                )
                >= at_least
            )

        reader.wait_for(seen, timeout=300, process=process)

    def now_ms() -> int:
        return int(time.time() * 1000)

    try:
        feeder.start()
        answered_by(v1, "champion", 30, 0)
        mark = now_ms()
        obj = move(lambda o, a: rollout.start(o, a, v2, f"s3://mlflow/{name}/2", PERCENT))
        canary_manifest = yaml.safe_dump(obj)
        answered_by(v2, "challenger", 100, mark)
        answered_by(v1, "champion", 100, mark)  # the rest of the keys, after the start
        mark = now_ms()
        obj = move(rollout.promote)
        answered_by(v2, "champion", 300, mark)
        mark = now_ms()
        obj = move(lambda o, a: rollout.start(o, a, v3, f"s3://mlflow/{name}/3", PERCENT))
        answered_by(v3, "challenger", 100, mark)
        mark = now_ms()
        obj = move(lambda o, a: rollout.rollback(o, a, "stream canary test"))
        answered_by(v2, "champion", 300, mark)

        def after_last_v3() -> bool:
            """300 champion answers to events produced after v3's last answer: the rollback took effect
            (v3 had 20 % of keys; 300 answers in a row without one are the switch, not chance) and
            events kept flowing after it. Counting from the move alone passed before the scorer's
            next registry poll on a fast machine."""
            stamps = [int(h["mlstack-source-timestamp"]) for *_, h in reader.records]
            versions = [h["mlstack-model-version"].decode() for *_, h in reader.records]
            last_v3 = max((t for t, v in zip(stamps, versions, strict=True) if v == v3), default=mark)
            return sum(1 for t, v in zip(stamps, versions, strict=True) if t > last_v3 and v == v2) >= 300

        reader.wait_for(after_last_v3, timeout=300, process=process)
        feeder.stop.set()
        feeder.join(60)
        assert not feeder.failed
        reader.wait_for(lambda: reader.count() >= len(feeder.delivered), timeout=300, process=process)
        reader.poll(3.0)
        time.sleep(2)  # the store writer's last flush
        process.terminate()
        assert process.wait(timeout=60) == 0
    finally:
        feeder.stop.set()
        if process.poll() is None:
            process.kill()
        reader.close()

    outputs = [
        (int(h["mlstack-source-partition"]), int(h["mlstack-source-offset"]), key, h)
        for _, key, _, h in reader.records
    ]
    # nothing lost or doubled across three switches
    answered = Counter((p, o) for p, o, _, _ in outputs)
    assert max(answered.values()) == 1
    assert set(answered) == {(p, o) for p, o, _ in feeder.delivered}
    # while a canary stands, a key in the challenger's share meets the challenger, every other key the
    # champion: per partition, between the canary's first and last challenger answer, without exception
    for version in (v2, v3):
        window_events = 0
        for partition in {p for p, *_ in outputs}:
            ordered = sorted((o, k, h) for p, o, k, h in outputs if p == partition)
            hits = [
                i
                for i, (_, _, h) in enumerate(ordered)
                if h["mlstack-model-version"] == version.encode() and h["mlstack-variant"] == b"challenger"
            ]
            if not hits:
                continue
            for _, key, h in ordered[hits[0] : hits[-1] + 1]:
                expected = (
                    (version, "challenger")
                    if in_challenger_share(key)
                    else (v1 if version == v2 else v2, "champion")
                )
                assert (h["mlstack-model-version"].decode(), h["mlstack-variant"].decode()) == expected, (
                    partition,
                    key,
                )
                window_events += 1
        assert window_events >= 300, (version, window_events)
    # a switch lands at a batch boundary and never goes back: per partition, in offset order, no v1 answer
    # after the first answer of the promoted v2 as champion, no v3 answer after the rollback's last events
    for partition in {p for p, *_ in outputs}:
        ordered = sorted((o, h) for p, o, _, h in outputs if p == partition)
        versions = [(h["mlstack-model-version"].decode(), h["mlstack-variant"].decode()) for _, h in ordered]
        promoted = versions.index((v2, "champion"))
        assert (v1, "champion") not in versions[promoted:] and (v2, "challenger") not in versions[promoted:]
        last_v3 = max(i for i, v in enumerate(versions) if v[0] == v3)
        assert all(v == (v2, "champion") for v in versions[last_v3 + 1 :]) and last_v3 < len(versions) - 50
    assert Counter(h["mlstack-model-version"].decode() for *_, h in outputs).keys() == {v1, v2, v3}

    # kubectl model analyze on the local payload log sees both variants of the first canary
    manifest = tmp_path / "isvc.yaml"
    manifest.write_text(canary_manifest)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli.kubectl_model",
            "analyze",
            name,
            "-f",
            str(manifest),
            "-o",
            "json",
        ],
        cwd=ROOT,
        env={
            **__import__("os").environ,
            "MLSTACK_HOME": str(tmp_path / "analyze-home"),
            "MLSTACK_TRACKING_URI": mlflow_server,
            "MLSTACK_SINK__STORE": str(store),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    analysis = json.loads(done.stdout)
    variants = analysis["variants"]
    # the analysis window starts at the canary's start annotation (whole seconds); rows are stamped
    # with their input's Kafka timestamp, which every output carries
    started = yaml.safe_load(canary_manifest)["metadata"]["annotations"][
        "serving.mlstack.io/canary-started-at"
    ]
    since_ms = int(datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() * 1000)
    counts = Counter(
        h["mlstack-model-version"].decode()
        for *_, h in outputs
        if int(h["mlstack-source-timestamp"]) >= since_ms
    )
    assert variants["primary"]["version"] == v1 and variants["canary"]["version"] == v2
    assert variants["primary"]["logged_predictions"] == counts[v1] > 0
    assert variants["canary"]["logged_predictions"] == counts[v2] > 0
