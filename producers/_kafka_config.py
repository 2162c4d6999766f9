"""The one place that renders ``Settings`` into a librdkafka configuration.

Every confluent-kafka client of rl-commons (the proxy's ``EventProducer``, the stream
worker's consumer, producer and admin client, the report's reader, the demo) takes its
configuration from ``kafka_config(settings, role, **overrides)``:

- the connection part, common to every role: ``bootstrap.servers``,
  ``security.protocol``, the SASL keys (only when the protocol is SASL) and the SSL
  files (whenever given);
- ``role="producer"``: idempotent, ``acks=all``, murmur2 partitioner (keys land where a
  Java / aiokafka / Faust client puts them), no compression, the queue bound and linger
  from the settings;
- ``role="consumer"``: nothing committed unless told to, earliest reset, range
  assignment, session and fetch timeouts that suit the embedded broker; pass
  ``**{"group.id": ...}``;
- ``role="admin"``: the connection part only.

Overrides (librdkafka's dotted keys) win. The result contains secrets: print it only
through ``redact``.

>>> from policy_store import Settings
>>> cfg = kafka_config(Settings(kafka_bootstrap="k:9092"), "consumer", **{"group.id": "g"})
>>> cfg["bootstrap.servers"], cfg["group.id"], cfg["enable.auto.commit"]
('k:9092', 'g', False)
>>> "sasl.username" in kafka_config(Settings(kafka_sasl_username="u"))  # not a SASL protocol
False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from policy_store import Settings

Role = Literal["producer", "consumer", "admin"]

_SECRET_KEYS = ("sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret")

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "compression.type": "none",
    "message.timeout.ms": 300_000,
    "socket.keepalive.enable": True,
    # only failures call our callback (a Python call per delivered message would cost
    # more than the rest of ``send``); delivered is derived instead
    "delivery.report.only.error": True,
}

# The embedded broker (Tansu) answers a JoinGroup after about half the session timeout:
# 6 s keeps (re)joins at ~3 s. It also holds a fetch until fetch.wait.max.ms expires
# instead of answering when data arrives, so the wait bounds the latency of every hop.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "partition.assignment.strategy": "range",
    "fetch.wait.max.ms": 10,
    "max.poll.interval.ms": 300_000,
}


def connection_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and the security keys, as every client needs them."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism:
            cfg["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username is not None:
            cfg["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    for key, value in (
        ("ssl.ca.location", settings.kafka_ssl_cafile),
        ("ssl.certificate.location", settings.kafka_ssl_certfile),
        ("ssl.key.location", settings.kafka_ssl_keyfile),
    ):
        if value:
            cfg[key] = value
    return cfg


def kafka_config(settings: Settings, role: Role = "admin", **overrides: Any) -> dict[str, Any]:
    """The librdkafka configuration of a ``role`` client (see the module docstring)."""
    cfg = connection_config(settings)
    if role == "producer":
        cfg.update(PRODUCER_DEFAULTS)
        cfg["queue.buffering.max.messages"] = settings.producer_queue_max
        # only delays delivery (``produce`` never waits): a longer linger means fewer
        # produce requests and staler parameters by as much
        cfg["linger.ms"] = settings.producer_linger_ms
    elif role == "consumer":
        cfg.update(CONSUMER_DEFAULTS)
    elif role != "admin":
        raise ValueError(f"role must be 'producer', 'consumer' or 'admin', not {role!r}")
    cfg.update(overrides)
    return cfg


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """``kafka_config(settings, "producer", **overrides)``."""
    return kafka_config(settings, "producer", **overrides)


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a client config that is safe to print."""
    return {
        k: ("***" if k in _SECRET_KEYS or "password" in k or "secret" in k else v)
        for k, v in config.items()
        if not callable(v)
    }
