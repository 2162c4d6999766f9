"""librdkafka client configurations of the stream worker, rendered from settings.

The connection and security part (bootstrap, security protocol, SASL, SSL files) is
the proxy's (``producers.producer_config``), so one set of ``RL_COMMONS_KAFKA_*``
settings serves both sides. These dicts contain secrets: never log them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_store import Settings
from producers._kafka import producer_config

_CONNECTION_PREFIXES = ("bootstrap.servers", "security.protocol", "sasl.", "ssl.")

# Tansu answers a JoinGroup after about half the session timeout: 6 s keeps (re)joins
# at ~3 s. Tansu also holds a fetch until fetch.wait.max.ms expires instead of answering
# when data arrives, so the wait bounds the latency of every hop.
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


def client_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security settings only."""
    full = producer_config(settings)
    return {k: v for k, v in full.items() if k.startswith(_CONNECTION_PREFIXES)}


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer of ``group_id`` that commits only when told to."""
    return {**client_config(settings), **CONSUMER_DEFAULTS, "group.id": group_id, **overrides}


def engine_producer_config(
    settings: Settings, on_delivery: Callable[[Any, Any], None]
) -> dict[str, Any]:
    """The worker's producer: idempotent, murmur2 keys, failures reported to ``on_delivery``."""
    return producer_config(
        settings,
        **{
            "linger.ms": 2,
            "queue.buffering.max.messages": 1_000_000,
            "message.timeout.ms": 60_000,
            "on_delivery": on_delivery,
        },
    )


def partition_count(metadata: Any, topic: str) -> int | None:
    """Partitions of ``topic`` in a ``list_topics()`` answer, None if it does not exist."""
    t = metadata.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)
