"""``producers.kafka_config`` is the one Settings -> librdkafka renderer: every role gets the
same connection and security keys, and only its own defaults."""

from __future__ import annotations

import pytest

from policy_store import Settings
from producers import kafka_config

SECURE = Settings(
    kafka_bootstrap="k1:9093,k2:9093",
    kafka_security_protocol="SASL_SSL",
    kafka_sasl_mechanism="SCRAM-SHA-512",
    kafka_sasl_username="worker",
    kafka_sasl_password="pw-123",
    kafka_ssl_cafile="ca.pem",
    kafka_ssl_certfile="client.pem",
    kafka_ssl_keyfile="client.key",
)
CONNECTION = {
    "bootstrap.servers": "k1:9093,k2:9093",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "worker",
    "sasl.password": "pw-123",
    "ssl.ca.location": "ca.pem",
    "ssl.certificate.location": "client.pem",
    "ssl.key.location": "client.key",
}


@pytest.mark.parametrize("role", ["producer", "consumer", "admin"])
def test_every_role_gets_the_same_connection_and_security(role):
    cfg = kafka_config(SECURE, role)
    assert {k: cfg[k] for k in CONNECTION} == CONNECTION


def test_roles_get_only_their_own_defaults():
    admin = kafka_config(SECURE, "admin")
    assert set(admin) == set(CONNECTION)
    consumer = kafka_config(SECURE, "consumer", **{"group.id": "g"})
    assert consumer["group.id"] == "g" and consumer["enable.auto.commit"] is False
    assert "partitioner" not in consumer
    producer = kafka_config(SECURE, "producer")
    assert producer["partitioner"] == "murmur2_random" and "group.id" not in producer


def test_sasl_keys_only_with_a_sasl_protocol():
    plain = Settings(kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="ca.pem")
    for role in ("producer", "consumer", "admin"):
        cfg = kafka_config(plain, role)
        assert not any(k.startswith("sasl.") for k in cfg)
        assert cfg["ssl.ca.location"] == "ca.pem"


def test_overrides_win_and_unknown_roles_are_refused():
    assert (
        kafka_config(SECURE, "consumer", **{"fetch.wait.max.ms": 500})["fetch.wait.max.ms"] == 500
    )
    with pytest.raises(ValueError, match="role must be"):
        kafka_config(SECURE, "streams")  # type: ignore[arg-type]
