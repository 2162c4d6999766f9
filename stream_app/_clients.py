"""The stream worker's Kafka clients, configured by ``producers.kafka_config`` (the one
Settings -> librdkafka renderer), so one set of ``RL_COMMONS_KAFKA_*`` settings serves
the proxy and the worker alike. These dicts contain secrets: never log them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_store import Settings
from producers import kafka_config


def engine_producer_config(
    settings: Settings, on_delivery: Callable[[Any, Any], None]
) -> dict[str, Any]:
    """The worker's producer: idempotent, murmur2 keys, failures reported to ``on_delivery``."""
    return kafka_config(
        settings,
        "producer",
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
