"""Kafka holds the record: every policy config change, in a compacted ``policies`` topic.

Redis is the cache the proxies read; what is needed to rebuild a policy lives in Kafka:
the rewards topic (retained: ``retention.ms=-1``) and ``<topic prefix>policies``, one
compacted partition keyed by policy name whose last record per name is the policy's
config with the cuts the rebuild needs (``PolicyRecord``); a deleted policy's last
record is a tombstone.

Who writes it. The paths that change a config (the CLI, the dashboard) call
``record_change`` after the change: it appends the record to a Redis stream,
``{key prefix}:changes`` (one XADD in the same place the change was made, so a command
never waits for Kafka and works while Kafka is down), and every stream worker relays
that stream to the topic (``ChangeRelay``, a thread: XREAD, produce, flush, then move
the shared cursor ``{key prefix}:changes:relayed``; two workers may both relay an
entry, which a compacted topic keyed by name absorbs). Only the path that makes a
change knows what it was: a deliberate delete or reset looks, to anything that merely
watches Redis, like a wiped Redis or a burst of applies. The relay also tells the
worker's config cache at once (a new arm, a deleted policy).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policy_store import RedisPolicyStore, Settings
from producers import kafka_config

log = logging.getLogger(__name__)

CHANGES_MAXLEN = 10_000  # entries kept in the Redis stream (relayed within seconds)


def policies_topic(settings: Settings) -> str:
    """The compacted topic of policy records: ``<topic prefix>policies``."""
    return settings.topic("policies")


def changes_key(prefix: str) -> str:
    """The Redis stream the change paths append to (its own slot, like the registry)."""
    return f"{prefix}:changes"


@dataclass(frozen=True)
class PolicyRecord:
    """A policy as the rebuild needs it: its config (JSON, None once deleted), the change
    that wrote this record, when, when the policy was created (rewards made before it
    belong to an earlier policy of that name) and the rewards-topic offsets of its last
    reset (per partition, the highest offset applied before it; rewards at or below it
    were forgotten)."""

    name: str
    change: str
    config: str | None
    at: float
    created_at: float
    reset_marks: dict[int, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {
            "name": self.name,
            "change": self.change,
            "config": None if self.config is None else json.loads(self.config),
            "at": self.at,
            "created_at": self.created_at,
            "reset_marks": {str(p): o for p, o in self.reset_marks.items()},
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> PolicyRecord:
        body = json.loads(raw)
        cfg = body.get("config")
        return cls(
            name=str(body["name"]),
            change=str(body["change"]),
            config=None if cfg is None else json.dumps(cfg),
            at=float(body["at"]),
            created_at=float(body["created_at"]),
            reset_marks={int(p): int(o) for p, o in (body.get("reset_marks") or {}).items()},
        )


def applied_marks(store: RedisPolicyStore, name: str) -> dict[int, int]:
    """The policy's watermarks (highest rewards offset applied, per partition): read them
    just before a reset and pass them to ``record_change(..., "reset", marks=...)``."""
    raw = store.run(store.client.hgetall, store.keys(name).applied)
    out = {}
    for f, v in raw.items():
        f = f.decode() if isinstance(f, bytes) else f
        if f.startswith("o:"):
            out[int(f[2:])] = int(v)
    return out


def record_change(
    store: RedisPolicyStore,
    name: str,
    change: str,
    *,
    marks: dict[int, int] | None = None,
    clock: Callable[[], float] = time.time,
) -> PolicyRecord | None:
    """Append the record of ``name`` after ``change`` (create, config, rollout, enabled,
    objective, reset, delete) to the changes stream, for the workers to relay to Kafka.

    Call it after the change succeeded. ``marks``: for a reset, ``applied_marks`` read
    before it. The policy's cuts are kept beside its config (``{base}:record``). Another
    store than Redis (an in-process dashboard) keeps no record: None."""
    if not isinstance(store, RedisPolicyStore):
        return None
    k = store.keys(name)
    raw_cfg, raw_meta = store.run(store.client.mget, [k.config, k.extra("record")])
    meta = json.loads(raw_meta) if raw_meta else {}
    now = clock()
    created_at = now if change == "create" or "created_at" not in meta else meta["created_at"]
    reset = meta.get("reset_marks", {}) if change != "reset" else marks or {}
    config = None if change == "delete" or raw_cfg is None else _text(raw_cfg)
    record = PolicyRecord(
        name, change, config, now, created_at, {int(p): int(o) for p, o in reset.items()}
    )
    pipe = store.client.pipeline(transaction=False)
    if config is not None:
        pipe.set(k.extra("record"), _meta(record))
    pipe.xadd(changes_key(store.prefix), {"record": record.to_bytes()}, maxlen=CHANGES_MAXLEN)
    store.run(pipe.execute)
    return record


def rebuilding_key(keys: Any) -> str:
    """Set while ``rl-commons rebuild`` replays a policy (``PolicyKeys``): workers holding
    its rewards wait until it is gone."""
    return keys.extra("rebuilding")


def held_policies(store: RedisPolicyStore) -> dict[str, dict[str, Any]]:
    """The policies whose rewards stream workers hold because their config vanished (a
    wiped Redis): name -> {since, reason} (``{key prefix}:held``, written by the workers)."""
    raw = store.run(store.client.hgetall, f"{store.prefix}:held")
    return {_text(k): json.loads(v) for k, v in raw.items()}


def restore_meta(store: RedisPolicyStore, record: PolicyRecord) -> None:
    """Write a record's cuts back beside the config (after a rebuild)."""
    store.run(store.client.set, store.keys(record.name).extra("record"), _meta(record))


def _meta(record: PolicyRecord) -> str:
    marks = {str(p): o for p, o in record.reset_marks.items()}
    return json.dumps({"created_at": record.created_at, "reset_marks": marks})


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class ChangeRelay:
    """Relays the changes stream to the policies topic, in a thread of the worker.

    ``on_change(record)`` is called for every entry once it is in Kafka (the worker's
    config cache reloads or forgets that policy). Kafka or Redis down: the entry stays
    in the stream and is relayed when both answer."""

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
        """Relay what the stream holds past the cursor (waiting up to ``block_ms`` for it)."""
        client = self.store.client
        cursor = client.get(self._cursor_key) or b"0"
        got = client.xread({self._stream: cursor}, count=500, block=self.block_ms)
        if not got:
            return 0
        entries = got[0][1]
        records = [PolicyRecord.from_bytes(fields[b"record"]) for _, fields in entries]
        producer = self._get_producer()
        for r in records:
            value = None if r.config is None else r.to_bytes()
            producer.produce(self.topic, value, r.name.encode())
        left = producer.flush(30)
        if left:
            raise RuntimeError(f"the broker did not acknowledge {left} policy records")
        last = entries[-1][0]
        client.set(self._cursor_key, last)
        self.relayed += len(records)
        for r in records:
            if self.on_change is not None:
                self.on_change(r)
        return len(records)

    def _get_producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            ensure_record_topics(self.settings, retain_rewards=False)
            self._producer = Producer(kafka_config(self.settings, "producer"))
        return self._producer


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
