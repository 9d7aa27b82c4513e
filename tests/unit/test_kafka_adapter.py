"""The Kafka adapter builds clients librdkafka accepts, for every security option, and refuses half-set credentials."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlstack.adapters import kafka
from mlstack.core.errors import UsageError
from mlstack.core.settings import load_settings


@pytest.fixture
def tls_files(tmp_path):
    """A CA certificate and a client key/certificate, as PEM files (what a Secret mounts)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlstack-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca, crt, pem = tmp_path / "ca.crt", tmp_path / "tls.crt", tmp_path / "tls.key"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(ca), str(crt), str(pem)


def test_sasl_over_tls_with_client_certificates_from_the_environment(monkeypatch, tls_files):
    ca, crt, key = tls_files
    for name, value in {
        "MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS": "kafka-0.kafka:9093",
        "MLSTACK_STREAM__KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "MLSTACK_STREAM__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "MLSTACK_STREAM__KAFKA__SASL_USERNAME": "scorer",
        "MLSTACK_STREAM__KAFKA__SASL_PASSWORD": "s3cret",
        "MLSTACK_STREAM__KAFKA__SSL_CA_LOCATION": ca,
        "MLSTACK_STREAM__KAFKA__SSL_CERTIFICATE_LOCATION": crt,
        "MLSTACK_STREAM__KAFKA__SSL_KEY_LOCATION": key,
    }.items():
        monkeypatch.setenv(name, value)
    access = kafka.KafkaAccess.from_config(load_settings().stream.kafka)
    config = access.client_config()
    assert config["sasl.password"] == "s3cret" and config["ssl.endpoint.identification.algorithm"] == "https"
    assert "s3cret" not in repr(load_settings().stream.kafka)  # a SecretStr: never in a log line
    # librdkafka refuses an unknown property or an unreadable certificate when the client is built
    kafka.producer(access, "t-1", **{"transaction.timeout.ms": 60000})
    kafka.consumer(access, "group", "pod-0")
    kafka.admin(access)


def test_every_consumer_reads_committed_and_never_commits_on_its_own():
    access = kafka.KafkaAccess(bootstrap_servers="127.0.0.1:1")
    config = access.client_config()
    assert config == {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "PLAINTEXT", "log_level": 4}
    consumer = kafka.consumer(access, "g", "pod-0")
    consumer.close()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_a_password_is_a_usage_error(protocol):
    access = kafka.KafkaAccess(bootstrap_servers="k:9092", security_protocol=protocol, sasl_username="u")
    with pytest.raises(UsageError, match="needs stream.kafka.sasl_username and sasl_password"):
        access.client_config()


def test_a_wrong_property_would_be_refused_by_librdkafka():
    """The test above can fail: librdkafka checks names and files when a client is built."""
    from confluent_kafka import KafkaException, Producer

    with pytest.raises(KafkaException, match="No such configuration property"):
        Producer({"bootstrap.servers": "k:9092", "ssl.ca.locaton": "x"})
    with pytest.raises(KafkaException):
        Producer(
            {"bootstrap.servers": "k:9092", "security.protocol": "SSL", "ssl.ca.location": "/nonexistent.pem"}
        )


def test_an_unreachable_kafka_is_one_line_and_exit_1(tmp_path):
    """`mlstack stream` against a port nothing listens on: a sentence, not a traceback."""
    import subprocess
    import sys

    from mlstack.core.procs import free_port
    from tests.conftest import ROOT

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli.main",
            "stream",
            "--model",
            "loans",
            "--bootstrap-servers",
            f"127.0.0.1:{free_port()}",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "MLSTACK_HOME": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr[-1500:]
    assert "Kafka did not answer" in errors[0] and "Traceback" not in done.stderr
