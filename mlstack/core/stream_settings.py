"""Settings of ``mlstack stream`` (the ``stream`` section): topics, delivery guarantee, batching, Kafka access.

Kept beside ``settings.py`` (which includes it as ``Settings.stream``) so the streaming knobs read in one
place. Every name a topic or group takes is derived from the model name unless set, so two models on
one Kafka never share a topic by accident.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaConfig(_Strict):
    """How to reach Kafka; credentials come from the environment (a Secret in the chart), never a file."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,...].")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user (required with SASL_*).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (required with SASL_*).")
    ssl_ca_location: str | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates."
    )
    ssl_certificate_location: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_key_location: str | None = Field(None, description="Client private key (PEM) for mutual TLS.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of the client private key.")
    ssl_verify_hostname: bool = Field(True, description="Check the broker's name against its certificate.")


class StreamConfig(_Strict):
    """``mlstack stream``: feature events in, predictions, dead letters and payload rows out."""

    model: str | None = Field(
        None, description="Registered model the scorer serves (default: training.model_name)."
    )
    inference_service: str | None = Field(
        None, description="Name payload rows are stored under (default: the model); what analyze/drift read."
    )
    namespace: str = Field("", description="Namespace written into payload rows (the chart sets the pod's).")
    input_topic: str | None = Field(None, description="Topic of feature events (default: <model>.features).")
    output_topic: str | None = Field(None, description="Topic of predictions (default: <model>.predictions).")
    dlq_topic: str | None = Field(None, description="Dead-letter topic (default: <model>.dlq).")
    payload_topic: str | None = Field(
        None, description="Topic carrying payload rows to the store writer (default: <model>.payloads)."
    )
    group_id: str | None = Field(None, description="Consumer group (default: mlstack-stream-<model>).")
    instance_id: str | None = Field(
        None, description="Static group member and transactional id (default: the host name, i.e. the pod)."
    )
    guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once",
        description="exactly_once: one Kafka transaction per micro-batch; at_least_once: faster.",
    )
    batch_max_events: int = Field(2000, ge=1, le=100_000, description="Events per micro-batch at most.")
    batch_max_wait_ms: float = Field(
        10.0, ge=0.0, le=10_000.0, description="How long a micro-batch waits to fill up (ms)."
    )
    max_event_bytes: int = Field(
        1_000_000, ge=1024, description="Larger events go to the dead-letter topic (reason oversized)."
    )
    dlq_value_bytes: int = Field(
        65_536, ge=1024, description="Bytes of an oversized event's value the dead letter keeps."
    )
    transaction_timeout_ms: int = Field(
        60_000, ge=1000, description="Kafka transaction.timeout.ms: an open batch older than this is aborted."
    )
    registry_poll_seconds: float = Field(
        5.0, gt=0, description="How often the scorer reads the model's aliases (no restart on a move)."
    )
    create_topics: bool = Field(
        True, description="Create missing topics at start (needs Create on the cluster)."
    )
    topic_partitions: int = Field(6, ge=1, description="Partitions of topics the scorer creates.")
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of topics the scorer creates."
    )
    store: str | None = Field(None, description="Payload store (default: sink.store, else <home>/payloads).")
    store_writer: bool = Field(
        True,
        description="Run the payload store writer in the scorer process (the chart runs `mlstack stream-store` beside it instead).",
    )
    store_flush_rows: int = Field(50_000, ge=1, description="The store writer writes a file every N rows ...")
    store_flush_seconds: float = Field(10.0, gt=0, description="... or every N seconds, whichever first.")
    metrics_host: str = Field("127.0.0.1", description="Bind address of /metrics (the image sets 0.0.0.0).")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Port of /metrics (0: no metrics server).")
    store_metrics_port: int = Field(
        9109, ge=0, le=65535, description="Port of `mlstack stream-store`'s /metrics (0: no metrics server)."
    )
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
