"""The stream worker's Kafka clients, behind the small ``KafkaClients`` interface.

``ConfluentClients`` builds them with ``producers.kafka_config`` (the one Settings ->
librdkafka renderer), so one set of ``RL_COMMONS_KAFKA_*`` settings serves the proxy
and the worker alike; the engine only calls the four methods below, so its unit tests
pass fakes instead (no broker). The configuration dicts contain secrets: never log them.

The changelog format (key = decision_id, value = the entry's JSON, None = deleted) is
``_batch_join.encode_entry`` / ``decode_entry``, with checkpoints (``_checkpoint``);
``restore`` reads it back from a partition's last complete checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from policy_store import Settings
from producers import Topics, kafka_config

from ._checkpoint import Record, Restored, restore_partition
from ._errors import ChangelogError

log = logging.getLogger(__name__)

Delivery = Callable[[Any, Any], None]


class KafkaClients(Protocol):
    """What the engine needs from Kafka; the clients follow confluent-kafka's interface."""

    def consumer(self, group_id: str) -> Any:
        """A consumer in ``group_id`` with manual commits and range assignment."""

    def producer(self, on_delivery: Delivery, every_delivery: bool = False) -> Any:
        """A producer reporting failed deliveries to ``on_delivery``, or every delivery
        (with its offset) to its callback with ``every_delivery``."""

    def ensure_changelog(self, changelog: str) -> None:
        """Create the compacted changelog (as many partitions as decisions) if missing."""

    def restore(
        self, changelog: str, partitions: list[int], timeout: float, starts: Mapping[int, int]
    ) -> dict[int, Restored]:
        """The tables of ``partitions`` read from ``changelog`` to its end: from the
        checkpoint at offset ``starts[p]`` when it is complete, else from the start."""


class ConfluentClients:
    """``KafkaClients`` made of confluent-kafka clients configured from ``settings``."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    def consumer(self, group_id: str) -> Any:
        from confluent_kafka import Consumer

        return Consumer(kafka_config(self.settings, "consumer", **{"group.id": group_id}))

    def producer(self, on_delivery: Delivery, every_delivery: bool = False) -> Any:
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
                "delivery.report.only.error": not every_delivery,
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
        self, changelog: str, partitions: list[int], timeout: float, starts: Mapping[int, int]
    ) -> dict[int, Restored]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer

        cfg = kafka_config(
            self.settings,
            "consumer",
            **{"group.id": f"{changelog}-restore", "enable.partition.eof": True},
        )
        c = Consumer(cfg)
        deadline = time.monotonic() + timeout
        out: dict[int, Restored] = {}
        try:
            begin = {p: starts.get(p, OFFSET_BEGINNING) for p in partitions}
            records = read_to_end(c, changelog, begin, deadline)
            for p in partitions:
                restored = restore_partition(records[p], starts.get(p))
                if restored is None:
                    log.warning(
                        "%s[%d]: no complete checkpoint at offset %d; reading it from the start",
                        changelog,
                        p,
                        starts[p],
                    )
                    again = read_to_end(c, changelog, {p: OFFSET_BEGINNING}, deadline)
                    restored = restore_partition(again[p])
                assert restored is not None  # from the beginning is always complete
                out[p] = restored
        finally:
            c.close()
        return out


def read_to_end(
    consumer: Any, changelog: str, begin: Mapping[int, int], deadline: float
) -> dict[int, list[Record]]:
    """The records of partitions of ``changelog`` from ``begin[p]`` to their end (the
    consumer needs ``enable.partition.eof``: the embedded broker's high watermark lags
    behind its last record batch, the end-of-partition event does not)."""
    from confluent_kafka import KafkaError, TopicPartition

    records: dict[int, list[Record]] = {p: [] for p in begin}
    left = set(begin)
    consumer.assign([TopicPartition(changelog, p, o) for p, o in begin.items()])
    while left:
        if time.monotonic() > deadline:
            raise ChangelogError(
                f"restoring {changelog} took too long (partitions left: {sorted(left)}); "
                "check the broker, or raise EngineOptions.restore_timeout"
            )
        for m in consumer.consume(5000, 0.2):
            err = m.error()
            if err is None:
                records[m.partition()].append((m.offset(), m.key(), m.value()))
            elif err.code() == KafkaError._PARTITION_EOF:
                left.discard(m.partition())
    consumer.unassign()
    return records


def partition_count(metadata: Any, topic: str) -> int | None:
    """Partitions of ``topic`` in a ``list_topics()`` answer, None if it does not exist."""
    t = metadata.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)
