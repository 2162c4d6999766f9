"""The stream worker's Kafka clients, behind the small ``KafkaClients`` interface.

``ConfluentClients`` builds them with ``producers.kafka_config`` (the one Settings ->
librdkafka renderer), so one set of ``RL_COMMONS_KAFKA_*`` settings serves the proxy
and the worker alike; the engine only calls the four methods below, so its unit tests
pass fakes instead (no broker). The configuration dicts contain secrets: never log them.

The changelog format (key = decision_id, value = the entry's JSON, None = deleted) is
``_batch_join.encode_entry`` / ``decode_entry``; ``restore`` reads it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from policy_store import Settings
from producers import Topics, kafka_config

from ._batch_join import State, decode_entry, restore_entries
from ._errors import ChangelogError

Delivery = Callable[[Any, Any], None]


class KafkaClients(Protocol):
    """What the engine needs from Kafka; the clients follow confluent-kafka's interface."""

    def consumer(self, group_id: str) -> Any:
        """A consumer in ``group_id`` with manual commits and range assignment."""

    def producer(self, on_delivery: Delivery) -> Any:
        """A producer reporting every delivery (or failure) to ``on_delivery``."""

    def ensure_changelog(self, changelog: str) -> None:
        """Create the compacted changelog (as many partitions as decisions) if missing."""

    def restore(
        self, changelog: str, partitions: list[int], timeout: float
    ) -> dict[int, dict[str, State]]:
        """The tables of ``partitions`` read from ``changelog``, from its start to its end."""


class ConfluentClients:
    """``KafkaClients`` made of confluent-kafka clients configured from ``settings``."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    def consumer(self, group_id: str) -> Any:
        from confluent_kafka import Consumer

        return Consumer(kafka_config(self.settings, "consumer", **{"group.id": group_id}))

    def producer(self, on_delivery: Delivery) -> Any:
        """Idempotent, murmur2 keys (the proxy's configuration) with a 2 ms linger."""
        from confluent_kafka import Producer

        cfg = kafka_config(
            self.settings,
            "producer",
            **{
                "linger.ms": 2,
                "queue.buffering.max.messages": 1_000_000,
                "message.timeout.ms": 60_000,
                "on_delivery": on_delivery,
            },
        )
        return Producer(cfg)

    def ensure_changelog(self, changelog: str) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(kafka_config(self.settings))
        meta = admin.list_topics(timeout=30)
        decisions = self.topics.decisions
        n = partition_count(meta, decisions)
        if n is None:
            raise ChangelogError(
                f"topic {decisions!r} does not exist; create the topics first "
                "(`rl-commons dev` or `rl-commons policy create` do it)"
            )
        have = partition_count(meta, changelog)
        if have is not None:
            if have != n:
                raise ChangelogError(
                    f"changelog {changelog!r} has {have} partitions, {decisions!r} has {n}; "
                    "delete the changelog topic (it is rebuilt from nothing) or use another "
                    "--app-id"
                )
            return
        topic = NewTopic(
            changelog, num_partitions=n, replication_factor=-1, config={"cleanup.policy": "compact"}
        )
        fut = admin.create_topics([topic], operation_timeout=30)[changelog]
        try:
            fut.result(30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ChangelogError(
                    f"could not create the changelog {changelog!r}: {exc}; create it by hand "
                    f"(compacted, {n} partitions) or give the worker the right to create topics"
                ) from exc
        deadline = time.monotonic() + 30
        while partition_count(admin.list_topics(timeout=30), changelog) != n:
            if time.monotonic() > deadline:
                raise ChangelogError(
                    f"changelog {changelog!r} was created but has not appeared with {n} "
                    "partitions after 30 s; check the broker's health and restart the worker"
                )
            time.sleep(0.1)

    def restore(
        self, changelog: str, partitions: list[int], timeout: float
    ) -> dict[int, dict[str, State]]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        cfg = kafka_config(self.settings, "consumer", **{"group.id": f"{changelog}-restore"})
        c = Consumer(cfg)
        records: dict[int, list[tuple[bytes, Any]]] = {p: [] for p in partitions}
        try:
            ends = {}
            for p in partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(changelog, p), timeout=30)
                if hi > lo:
                    ends[p] = hi
            if ends:
                c.assign([TopicPartition(changelog, p, OFFSET_BEGINNING) for p in ends])
                deadline = time.monotonic() + timeout
                while ends:
                    if time.monotonic() > deadline:
                        raise ChangelogError(
                            f"restoring {changelog} took over {timeout:.0f} s (partitions left: "
                            f"{ends}); check the broker, or raise EngineOptions.restore_timeout"
                        )
                    for m in c.consume(5000, 0.2):
                        if m.error() is not None:
                            continue
                        p = m.partition()
                        records[p].append((m.key(), decode_entry(m.value())))
                        if p in ends and m.offset() + 1 >= ends[p]:
                            del ends[p]
        finally:
            c.close()
        return {p: restore_entries(recs) for p, recs in records.items()}


def partition_count(metadata: Any, topic: str) -> int | None:
    """Partitions of ``topic`` in a ``list_topics()`` answer, None if it does not exist."""
    t = metadata.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)
