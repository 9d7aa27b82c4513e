"""The test broker's prerequisites: a missing jar folder or Java is named with the command that fixes it."""

from __future__ import annotations

from tests.fixtures import kafka


def test_missing_jars_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(kafka, "jars_dir", lambda: kafka.ROOT / "bin" / "kafka-0.0.0-absent")
    reason = kafka.missing_reason()
    assert reason is not None and "`make test-kafka` fetches Kafka's jars" in reason


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    assert "java is not on PATH" in (kafka.missing_reason() or "")


def test_the_broker_is_one_kraft_node_on_loopback(tmp_path):
    properties = dict(
        line.split("=", 1) for line in kafka.server_properties(tmp_path, 9092, 9093).splitlines() if line
    )
    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert properties["transaction.state.log.replication.factor"] == "1"
    assert properties["offsets.topic.replication.factor"] == "1"
