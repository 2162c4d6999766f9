"""Kafka holds the record: every policy config change, in a compacted ``policies`` topic.

Redis is the cache the proxies read; what is needed to rebuild a policy lives in Kafka:
the rewards topic (retained: ``retention.ms=-1``) and ``<topic prefix>policies``, one
compacted partition keyed by policy name whose last record per name is the policy's
config with the cuts the rebuild needs (``PolicyRecord``); a deleted policy's last
record is a tombstone.

Who writes it. ``RedisPolicyStore`` itself: every config change it makes appends the
record to the Redis stream ``{key prefix}:changes`` in the same atomic step
(``policy_store._record``), whoever asked for it (CLI, dashboard, the LiteLLM proxy
handler, a selector creating its policy), so a change never waits for Kafka and works
while Kafka is down. Every stream worker relays that stream to the topic
(``ChangeRelay``, a thread: XREAD, produce, flush, then move the shared cursor
``{key prefix}:changes:relayed``; two workers may both relay an entry, which a
compacted topic keyed by name absorbs). Only the store knows what a change was: a
deliberate delete or reset looks, to anything that merely watches Redis, like a wiped
Redis or a burst of applies. The relay also tells the worker's config cache at once (a
new arm, a deleted policy). The window: a change is in Kafka once a worker relayed it
(well under a second while a worker runs); a Redis wiped before that loses the change's
record, and a rebuild restores the config recorded before it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from policy_store import PolicyRecord, RedisPolicyStore, Settings, changes_key
from producers import kafka_config

log = logging.getLogger(__name__)


def policies_topic(settings: Settings) -> str:
    """The compacted topic of policy records: ``<topic prefix>policies``."""
    return settings.topic("policies")


def rebuilding_key(keys: Any) -> str:
    """Set while ``rl-commons rebuild`` replays a policy (``PolicyKeys``): workers holding
    its rewards wait until it is gone."""
    return keys.extra("rebuilding")


def held_policies(store: RedisPolicyStore) -> dict[str, dict[str, Any]]:
    """The policies whose rewards stream workers hold because their config vanished (a
    wiped Redis): name -> {since, reason} (``{key prefix}:held``, written by the workers)."""
    raw = store.run(store.client.hgetall, f"{store.prefix}:held")
    return {_text(k): json.loads(v) for k, v in raw.items()}


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class ChangeRelay:
    """Relays the changes stream to the policies topic, in a thread of the worker.

    ``on_change(record)`` is called for every entry this worker reads, whichever worker
    relayed it (each keeps its own read position; only entries past the shared cursor
    are produced): the worker's config cache reloads or forgets that policy. Kafka or
    Redis down: the entry stays in the stream and is relayed when both answer."""

    def __init__(
        self,
        store: RedisPolicyStore,
        settings: Settings,
        on_change: Callable[[PolicyRecord], None] | None = None,
        *,
        block_ms: int = 500,
    ) -> None:
        self.store = store
        self.settings = settings
        self.topic = policies_topic(settings)
        self.on_change = on_change
        self.block_ms = block_ms
        self.relayed = 0
        self._stream = changes_key(store.prefix)
        self._cursor_key = f"{self._stream}:relayed"
        self._producer: Any = None
        self._read: bytes | None = None  # this worker's position in the stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChangeRelay:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rlc-change-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.relay_once()
                failing = False
            except Exception as exc:  # Redis or Kafka down: the entries wait in the stream
                if not failing:
                    log.warning("cannot relay policy changes to %s yet: %s", self.topic, exc)
                failing = True
                self._stop.wait(1.0)

    def relay_once(self) -> int:
        """Read the stream past this worker's position (waiting up to ``block_ms``),
        relay what is past the shared cursor; returns the number of entries read."""
        client = self.store.client
        shared = client.get(self._cursor_key) or b"0"
        if self._read is None:
            self._read = shared
        got = client.xread({self._stream: self._read}, count=500, block=self.block_ms)
        if not got:
            return 0
        entries = got[0][1]
        raws = [(i, fields[b"record"]) for i, fields in entries]
        records = [(i, raw, PolicyRecord.from_bytes(raw)) for i, raw in raws]
        fresh = [(raw, r) for i, raw, r in records if _entry_id(i) > _entry_id(shared)]
        if fresh:
            producer = self._get_producer()
            for raw, r in fresh:  # as the store wrote it
                producer.produce(self.topic, None if r.config is None else raw, r.name.encode())
            left = producer.flush(30)
            if left:
                raise RuntimeError(f"the broker did not acknowledge {left} policy records")
            client.set(self._cursor_key, entries[-1][0])
            self.relayed += len(fresh)
        self._read = entries[-1][0]
        for _, _, r in records:
            if self.on_change is not None:
                self.on_change(r)
        return len(records)

    def _get_producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            ensure_record_topics(self.settings, retain_rewards=False)
            self._producer = Producer(kafka_config(self.settings, "producer"))
        return self._producer


def _entry_id(raw: bytes | str) -> tuple[int, ...]:
    """A stream entry id (``ms-seq``, or ``0``) in the order Redis gives them."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return tuple(int(x) for x in text.split("-"))


def ensure_record_topics(settings: Settings, *, retain_rewards: bool = True) -> list[str]:
    """Create the compacted policies topic if missing and, with ``retain_rewards``, set
    ``retention.ms=-1`` on the rewards topic (what ``rl-commons dev`` and the compose
    stack's init do). Returns what was done, one line each."""
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient(kafka_config(settings, "admin"))
    done = []
    topic = policies_topic(settings)
    if topic not in admin.list_topics(timeout=30).topics:
        config = {"cleanup.policy": "compact", "retention.ms": "-1"}
        fut = admin.create_topics([NewTopic(topic, 1, -1, config=config)])[topic]
        try:
            fut.result(30)
            done.append(f"created {topic} (compacted)")
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if retain_rewards:
        rewards = settings.topic("rewards")
        res = ConfigResource("topic", rewards, set_config={"retention.ms": "-1"})
        try:
            admin.alter_configs([res])[res].result(30)
            done.append(f"{rewards}: retention.ms=-1")
        except Exception as exc:  # e.g. a broker that does not support it (the embedded one)
            if "UNSUPPORTED_FEATURE" in str(exc):
                done.append(
                    f"{rewards}: this broker cannot set retention (the embedded one keeps "
                    "every message while it runs)"
                )
            else:
                done.append(f"{rewards}: retention not set ({exc}); set retention.ms=-1 by hand")
    return done


def read_policy_records(settings: Settings, timeout: float = 30.0) -> dict[str, PolicyRecord]:
    """The last record of every policy in the policies topic (deleted ones left out)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    topic = policies_topic(settings)
    extra = {"group.id": f"{topic}-reader", "enable.partition.eof": True}
    c = Consumer(kafka_config(settings, "consumer", **extra))
    out: dict[str, PolicyRecord | None] = {}
    try:
        meta = c.list_topics(topic, timeout=timeout).topics.get(topic)
        ends = set(meta.partitions) if meta is not None and meta.error is None else set()
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:  # to end-of-partition, not the watermark
            for m in c.consume(1000, 0.2):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        ends.discard(m.partition())
                    continue
                name = m.key().decode()
                out[name] = None if m.value() is None else PolicyRecord.from_bytes(m.value())
    finally:
        c.close()
    return {n: r for n, r in out.items() if r is not None}
