"""Topic names and creation. Topics are pre-created; never rely on auto-creation.

Decisions and outcomes must have the same partition count (co-partitioned join).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from policy_store import Settings

from ._kafka import kafka_error
from ._kafka_config import kafka_config

TOPIC_KINDS = ("decisions", "outcomes", "rewards", "dlq")


@dataclass(frozen=True)
class Topics:
    prefix: str = "rlc."

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(settings.topic_prefix)

    @property
    def decisions(self) -> str:
        return f"{self.prefix}decisions"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}outcomes"

    @property
    def rewards(self) -> str:
        return f"{self.prefix}rewards"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def all(self) -> list[str]:
        return [self.decisions, self.outcomes, self.rewards, self.dlq]


def create_topics(
    settings: Settings,
    topics: Topics | None = None,
    *,
    partitions: int | None = None,
    replication: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the four topics if missing; returns the names created. Idempotent.

    The admin client is ``kafka_config(settings, "admin")`` (broker and security);
    ``topics`` defaults to ``settings.topic_prefix``'s, ``partitions`` to
    ``settings.topic_partitions``. Raises ``KafkaClientError`` (``KafkaConfigError``
    for a refused configuration).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    topics = topics or Topics.from_settings(settings)
    partitions = settings.topic_partitions if partitions is None else partitions
    bootstrap = settings.kafka_bootstrap
    try:
        admin = AdminClient(kafka_config(settings, "admin"))
        existing = set(admin.list_topics(timeout=timeout).topics)
    except (KafkaException, ValueError, TypeError) as exc:
        raise kafka_error(exc, f"listing the topics of {bootstrap}") from exc
    wanted = [t for t in topics.all() if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in wanted],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise kafka_error(exc, f"creating topic {name}") from exc
    # metadata propagation
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(wanted) <= set(admin.list_topics(timeout=timeout).topics):
            break
        time.sleep(0.1)
    return created
