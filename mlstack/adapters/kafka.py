"""The one door to Kafka: clients built from an explicit address and credentials, no global state.

Every client of ours reads with ``isolation.level=read_committed``: with transactions, a
``read_uncommitted`` reader also sees the records of aborted batches (what a killed scorer had sent
before it died), so it would count predictions twice. Property names are librdkafka's
(CONFIGURATION.md at v2.16.0, the version confluent-kafka 2.16.1 bundles); librdkafka refuses an
unknown name when the client is built, and a unit test builds each client with every option set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlstack.core.errors import MlstackError, UsageError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    from mlstack.core.stream_settings import KafkaConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class KafkaAccess:
    """Where Kafka is and how to authenticate: PLAINTEXT, TLS (optionally mutual) or SASL over either."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = None
    ssl_verify_hostname: bool = True

    @classmethod
    def from_config(cls, config: KafkaConfig) -> KafkaAccess:
        def secret(value) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            bootstrap_servers=config.bootstrap_servers,
            security_protocol=config.security_protocol,
            sasl_mechanism=config.sasl_mechanism,
            sasl_username=config.sasl_username,
            sasl_password=secret(config.sasl_password),
            ssl_ca_location=config.ssl_ca_location,
            ssl_certificate_location=config.ssl_certificate_location,
            ssl_key_location=config.ssl_key_location,
            ssl_key_password=secret(config.ssl_key_password),
            ssl_verify_hostname=config.ssl_verify_hostname,
        )

    def client_config(self) -> dict[str, Any]:
        """librdkafka properties for this access; UsageError when credentials are incomplete."""
        if not self.bootstrap_servers.strip():
            raise UsageError(
                "stream.kafka.bootstrap_servers is empty; set MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS"
            )
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "log_level": 4,  # warnings and errors; librdkafka's info lines are per connection
        }
        if self.security_protocol.startswith("SASL_"):
            if not self.sasl_username or not self.sasl_password:
                raise UsageError(
                    f"security protocol {self.security_protocol} needs stream.kafka.sasl_username and "
                    "sasl_password (MLSTACK_STREAM__KAFKA__SASL_PASSWORD, from a Secret)"
                )
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": self.sasl_password,
            }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            tls = {
                "ssl.ca.location": self.ssl_ca_location,
                "ssl.certificate.location": self.ssl_certificate_location,
                "ssl.key.location": self.ssl_key_location,
                "ssl.key.password": self.ssl_key_password,
            }
            config |= {key: value for key, value in tls.items() if value}
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_verify_hostname else "none"
        return config


def consumer(
    access: KafkaAccess, group_id: str, instance_id: str | None = None, **overrides: Any
) -> Consumer:
    """A read_committed consumer that never commits on its own (the caller commits or transacts).

    ``instance_id`` makes it a static member (``group.instance.id``): a restarted scorer with the
    same id gets its partitions back at once instead of after the session timeout.
    """
    from confluent_kafka import Consumer

    config = access.client_config() | {
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    if instance_id:
        config["group.instance.id"] = instance_id
    return Consumer(config | overrides)


def producer(access: KafkaAccess, transactional_id: str | None = None, **overrides: Any) -> Producer:
    """An idempotent producer; transactional when ``transactional_id`` is given (exactly once)."""
    from confluent_kafka import Producer

    config = access.client_config() | {"enable.idempotence": True, "acks": "all"}
    if transactional_id:
        config["transactional.id"] = transactional_id
    return Producer(config | overrides)


def admin(access: KafkaAccess) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(access.client_config())


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...] = ()


def existing_topics(client: AdminClient, timeout: float = 10.0) -> dict[str, int]:
    """topic -> partition count, as the cluster's metadata says; MlstackError when Kafka does not answer."""
    from confluent_kafka import KafkaException

    try:
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise MlstackError(
            f"Kafka did not answer within {timeout:.0f} s ({exc.args[0].str()}); check "
            "stream.kafka.bootstrap_servers and security_protocol, and that the brokers are up"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}


def ensure_topics(client: AdminClient, specs: list[TopicSpec], create: bool, timeout: float = 60.0) -> None:
    """Create the missing topics (``create``) or wait for someone else to; returns when all exist."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    deadline = time.monotonic() + timeout
    asked = False
    while True:
        present = existing_topics(client)
        missing = [spec for spec in specs if spec.name not in present]
        if not missing:
            return
        if create and not asked:
            futures = client.create_topics(
                [NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in missing]
            )
            for name, future in futures.items():
                try:
                    future.result()
                    log.info("created topic %s", name)
                except KafkaException as exc:
                    if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                        raise UsageError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
            asked = True
        if time.monotonic() > deadline:
            raise UsageError(
                f"topic(s) {[s.name for s in missing]} do not exist on {client}; create them or set "
                "stream.create_topics=true"
            )
        log.info("waiting for topic(s) %s", [s.name for s in missing])
        time.sleep(0.5)
