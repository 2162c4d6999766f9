"""Reading what the report and the off-policy evaluation need (the only I/O of this package).

* ``scan_topic``: every message of a topic, from the beginning up to the high watermark
  at the time of the call, then stop. The consumer assigns partitions itself (no group
  membership, nothing committed), so running a report never disturbs the stream workers.
* ``read_rewards``: every ``RewardEvent`` of a policy on the rewards topic (``scan_topic``).
* ``read_aggregates``: the per-minute sums the workers keep in Redis
  (``stream_app.aggregates``), for a quick report without reading the topic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from policy_store import PolicyKeys, RLCommonsError, Settings
from producers import EventError, RewardEvent, Topics, kafka_config, parse_event


class EvaluationSourceError(RLCommonsError):
    """The rewards could not be read (broker or Redis unreachable, topic missing)."""


@dataclass(frozen=True)
class ReadStats:
    """What ``read_rewards`` saw: messages read, rewards kept, unusable messages, and the
    number of rewards per policy on the topic."""

    topic: str
    messages: int
    kept: int
    other_policies: int
    invalid: int
    seconds: float
    policies: dict[str, int] = field(default_factory=dict)


def read_rewards(
    settings: Settings,
    policy: str | None,
    *,
    topic: str | None = None,
    timeout: float = 60.0,
) -> tuple[list[RewardEvent], ReadStats]:
    """All rewards of ``policy`` (all policies when None) currently on the rewards topic.

    ``ReadStats.policies`` counts the rewards of every policy seen, so a caller can name
    the policies that do have rewards when ``policy`` has none.
    """
    topic = topic or Topics.from_settings(settings).rewards
    started = time.monotonic()
    kept: list[RewardEvent] = []
    seen: Counter[str] = Counter()
    messages = invalid = 0
    for _partition, _offset, value in scan_topic(settings, topic, timeout=timeout):
        messages += 1
        try:
            event = parse_event(value, RewardEvent)
        except EventError:
            invalid += 1
            continue
        seen[event.policy] += 1
        if policy is None or event.policy == policy:
            kept.append(event)
    other = sum(seen.values()) - len(kept)
    stats = ReadStats(
        topic, messages, len(kept), other, invalid, time.monotonic() - started, dict(seen)
    )
    return kept, stats


def quiet_kafka_logger() -> logging.Logger:
    """A logger for librdkafka's own messages that drops them: a broker that cannot be
    reached is reported once, as an ``EvaluationSourceError``, not as a line per retry."""
    quiet = logging.getLogger("rl_commons.kafka.quiet")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    return quiet


def scan_topic(
    settings: Settings, topic: str, *, timeout: float = 60.0
) -> Iterator[tuple[int, int, bytes]]:
    """``(partition, offset, value)`` of every message on ``topic``, from the beginning up to
    the high watermark at the time of the call, then stop.

    The consumer assigns partitions itself (no group membership, nothing committed), so a
    reader never disturbs the stream workers. ``EvaluationSourceError`` when the broker is
    unreachable, the topic is missing or ``timeout`` seconds pass.
    """
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    deadline = time.monotonic() + timeout
    consumer = Consumer(
        kafka_config(
            settings,
            "consumer",
            **{
                "group.id": f"rlc-report-{uuid.uuid4().hex[:12]}",  # never joined: assign() only
                "enable.partition.eof": True,
            },
        ),
        logger=quiet_kafka_logger(),
    )
    messages = 0
    try:
        try:
            meta = consumer.list_topics(topic, timeout=min(10.0, timeout))
        except KafkaException as exc:
            raise EvaluationSourceError(
                f"cannot reach the broker at {settings.kafka_bootstrap} ({exc}); "
                "set RL_COMMONS_KAFKA_BOOTSTRAP or pass --kafka-bootstrap"
            ) from exc
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise EvaluationSourceError(
                f"topic {topic!r} does not exist on {settings.kafka_bootstrap}; check "
                "RL_COMMONS_TOPIC_PREFIX (or --topic-prefix) and that the stream app has run"
            )
        # A partition is done at end-of-partition (the high watermark of the last fetch),
        # or once the last offset that ListOffsets reported has been read. Some brokers
        # (Tansu) answer ListOffsets with the last batch's base offset + 1, so that
        # answer is only used to skip empty partitions and as a lower bound.
        remaining: dict[int, int] = {}  # partition -> lower bound of its high watermark
        for p in sorted(tmeta.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=max(1.0, deadline - time.monotonic())
            )
            if high > low:
                remaining[p] = high
        if remaining:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        while remaining:
            if time.monotonic() > deadline:
                raise EvaluationSourceError(
                    f"timed out after {timeout:.0f}s reading {topic!r}: {messages} messages read, "
                    f"{len(remaining)} partitions unfinished; raise --timeout"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    remaining.pop(msg.partition(), None)
                elif err.fatal():
                    raise EvaluationSourceError(f"reading {topic!r} failed: {err}")
                continue
            messages += 1
            p = msg.partition()
            if p in remaining:
                _, fetched_high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), cached=True
                )
                if msg.offset() + 1 >= max(remaining[p], fetched_high):
                    del remaining[p]
            yield p, msg.offset(), msg.value() or b""
    finally:
        consumer.close()


def read_aggregates(
    settings: Settings, policy: str, *, minutes: int = 7 * 24 * 60, client=None
) -> list:
    """The last ``minutes`` per-minute aggregate buckets of ``policy`` from Redis."""
    import redis

    from stream_app.aggregates import read_buckets

    own = client is None
    if own:
        client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        return read_buckets(client, PolicyKeys(settings.key_prefix, policy), minutes=minutes)
    except redis.RedisError as exc:
        raise EvaluationSourceError(
            f"cannot read aggregates from Redis ({exc}); set RL_COMMONS_REDIS_URL or --redis-url"
        ) from exc
    finally:
        if own:
            client.close()
