"""The batch engine: one consumer thread that joins, publishes and applies in batches.

Faust's per-event path costs ~100 µs of the worker's main thread per message (a bare
agent reads 7,500-10,000 events/s on a 2-core box), and every reward needs three
messages (decision, outcome, reward) plus changelog writes, so a Faust agent per
topic cannot reach thousands of rewards/s. The engine reads the same topics with a
confluent-kafka consumer in batches instead, inside the Faust worker (which keeps
the web server, metrics, timers and lifecycle):

    consume up to ``batch_size`` messages of decisions, outcomes and rewards
    -> join decisions/outcomes (``JoinTables``): rewards, DLQ records, table changes
    -> produce rewards + DLQ, flush; produce the table changes to the changelog, flush
    -> apply the batch's rewards through the store's idempotent ``apply``
       (retrying with backoff while Redis is down: nothing is committed meanwhile)
    -> commit the offsets of every message of the batch

Every worker with the same app id is one consumer group, ``<app id>-engine``
(``range`` assignment, so a
worker owns partition ``p`` of decisions, outcomes and rewards alike). On assignment
a partition's table is restored from ``<app id>-join-changelog`` partition ``p``.
A crash anywhere before the commit replays the batch: the restored table may be ahead
of the input (changelog flushed, offsets not committed), and a replayed message then
meets the entry's tombstone, which re-sends the stored reward; rewards are keyed by
decision_id and applied idempotently, so nothing counts twice and nothing is lost.

Windows close in ``sweep`` (every ``sweep_interval`` s): rewards first (flushed),
then the tombstones, so a crash in between re-sends rather than loses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy_store import Settings, StoreUnavailableError
from producers import EventError, RewardEvent, Topics, kafka_config

from ._batch_join import DECISIONS, OUTCOMES, JoinTables, Outputs, Source, restore_entries
from ._clients import engine_producer_config, partition_count
from ._updater import Updater
from ._validation import validate_reward

log = logging.getLogger(__name__)


@dataclass
class EngineOptions:
    batch_size: int = 2000
    poll_wait: float = 0.05  # longest wait for a first message when idle
    sweep_interval: float = 1.0
    restore_timeout: float = 120.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0


class BatchEngine:
    """Runs the join and the updater of one worker in a thread (``start`` / ``stop``)."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        app_id: str,
        join: JoinTables,
        updater: Updater,
        *,
        options: EngineOptions | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.topics = topics
        # Faust's own consumer of the app joins the group ``app_id`` (with its own
        # assignor): the engine is the group ``<app id>-engine``
        self.group_id = f"{app_id}-engine"
        self.changelog = f"{app_id}-join-changelog"
        self.join = join
        self.updater = updater
        self.options = options or EngineOptions()
        self._consumer_overrides = dict(consumer_overrides or {})
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._delivery_errors: list[str] = []
        self.assigned: list[str] = []
        self.rebalancing = True
        self.error: BaseException | None = None
        self._next_sweep = 0.0
        # rewards read but not applied yet (kept while Redis is down), offsets to commit
        self._pending: list[tuple[RewardEvent, Any]] = []
        self._reward_offsets: dict[tuple[str, int], int] = {}
        self._retry_at = 0.0
        self._backoff = self.options.initial_backoff
        self._rewards_paused = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> BatchEngine:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rlc-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def ready(self) -> bool:
        return bool(self.assigned) and not self.rebalancing

    def _run(self) -> None:
        backoff = self.options.initial_backoff
        while not self._stop.is_set():
            try:
                self._session()
                return
            except Exception as exc:  # a broken client: start over from the committed offsets
                self.error = exc
                log.exception("stream engine failed; restarting from the committed offsets")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff)

    def _session(self) -> None:
        from confluent_kafka import Consumer, Producer

        ensure_changelog(self.settings, self.topics, self.changelog)
        self._producer = Producer(engine_producer_config(self.settings, self._on_delivery))
        cfg = kafka_config(
            self.settings, "consumer", **{"group.id": self.group_id}, **self._consumer_overrides
        )
        self._consumer = Consumer(cfg)
        self.rebalancing = True
        self.join.tables.clear()
        self._forget_pending()
        self._rewards_paused = False
        try:
            self._consumer.subscribe(
                [self.topics.decisions, self.topics.outcomes, self.topics.rewards],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stop.is_set():
                msgs = self._consume()
                if msgs:
                    self._process(msgs)
                now = self._clock()
                self._apply_pending(now)
                if now >= self._next_sweep:
                    self._next_sweep = now + self.options.sweep_interval
                    self._sweep(now)
        finally:
            consumer, self._consumer = self._consumer, None
            try:
                consumer.close()  # leaves the group at once: the partitions move now
            except Exception as exc:
                log.warning("closing the consumer failed: %s", exc)
            self._producer.flush(5)
            self.assigned = []

    # -- consuming ---------------------------------------------------------------------------
    def _consume(self) -> list[Any]:
        """What is fetched already, else wait up to ``poll_wait`` for the first message."""
        c, n = self._consumer, self.options.batch_size
        msgs = c.consume(n, 0)
        if msgs:
            return msgs
        first = c.poll(self.options.poll_wait)
        if first is None:
            return []
        return [first, *c.consume(n - 1, 0)]

    def _process(self, msgs: list[Any]) -> None:
        now = self._clock()
        out = Outputs()
        join_offsets: dict[tuple[str, int], int] = {}
        n_rewards = 0
        dec, outc, rew = self.topics.decisions, self.topics.outcomes, self.topics.rewards
        for msg in msgs:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
                continue
            topic, p, off = msg.topic(), msg.partition(), msg.offset()
            value = msg.value() or b""
            if topic == rew:
                self._reward_offsets[(topic, p)] = off + 1
                n_rewards += 1
                try:
                    reward, _cfg = validate_reward(value, self.join.config)
                    self._pending.append((reward, msg))
                except EventError as exc:
                    out.dlq.append(
                        self.join.dlq_record(exc.reason, exc.detail, value, _source(msg), now, None)
                    )
                continue
            join_offsets[(topic, p)] = off + 1
            kind = DECISIONS if topic == dec else OUTCOMES if topic == outc else None
            if kind is not None:
                self.join.handle(kind, value, _source(msg), now, out)
        if n_rewards:
            self.updater.metrics.events_in.labels("rewards").inc(n_rewards)
        self._publish(out)
        self.join.flush_counts()
        self._commit(join_offsets)

    def _apply_pending(self, now: float) -> None:
        """Apply the rewards read so far and commit their offsets; on a Redis outage keep
        them (uncommitted), pause the rewards partitions and retry with backoff while the
        join goes on."""
        if not self._reward_offsets or now < self._retry_at:
            return
        rewards = self._pending
        try:
            result = self.updater.apply([r for r, _ in rewards]) if rewards else None
        except StoreUnavailableError as exc:
            self.updater.metrics.apply_retries.inc()
            log.warning("store unavailable, retrying in %.1fs: %s", self._backoff, exc)
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, self.options.max_backoff)
            self._pause_rewards(True)
            return
        if result is not None and result.rejected:
            by_id = {r.decision_id: m for r, m in rewards}
            out = Outputs()
            for reward, reason, detail in result.rejected:
                m = by_id[reward.decision_id]
                out.dlq.append(
                    self.join.dlq_record(
                        reason, detail, m.value() or b"", _source(m), now, reward.policy
                    )
                )
            self._publish(out)
            self.join.flush_counts()
        self._commit(self._reward_offsets)
        self._forget_pending()
        self._pause_rewards(False)

    def _forget_pending(self) -> None:
        self._pending = []
        self._reward_offsets = {}
        self._retry_at = 0.0
        self._backoff = self.options.initial_backoff

    def _pause_rewards(self, pause: bool) -> None:
        if pause == self._rewards_paused:
            return
        from confluent_kafka import TopicPartition

        tps = [
            TopicPartition(tp.topic, tp.partition)
            for tp in self._consumer.assignment()
            if tp.topic == self.topics.rewards
        ]
        (self._consumer.pause if pause else self._consumer.resume)(tps)
        self._rewards_paused = pause

    # -- producing ---------------------------------------------------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    def _produce(self, topic: str, key: bytes, value: bytes | None, partition: int = -1) -> None:
        p = self._producer
        while True:
            try:
                p.produce(topic, value, key, partition)
                return
            except BufferError:
                p.poll(0.05)

    def _flush(self) -> None:
        left = self._producer.flush(60)
        if left or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors[:3], []
            raise RuntimeError(f"could not deliver to the broker ({left} left): {errors}")

    def _publish(self, out: Outputs) -> None:
        """Rewards and DLQ records, flushed; then the table changes, flushed."""
        if not out:
            return
        for r in out.rewards:
            self._produce(self.topics.rewards, r.decision_id.encode(), r.to_bytes())
        for rec in out.dlq:
            key = rec.key.encode() if rec.key else b""
            self._produce(self.topics.dlq, key, rec.to_bytes())
        if out.rewards or out.dlq:
            self._flush()
        if out.changes:
            for (p, key), state in out.changes.items():
                value = None if state is None else json.dumps(state).encode()
                self._produce(self.changelog, key.encode(), value, p)
            self._flush()

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # the group moved on (rebalance): the new owner reads these messages again;
            # everything they cause is idempotent (tombstones re-send, apply dedupes)
            log.warning("offset commit refused, the batch will be read again: %s", exc)

    def _sweep(self, now: float) -> None:
        if self.rebalancing:
            return
        out = Outputs()
        if self.join.sweep(now, out):
            self._publish(out)
        self.join.flush_counts()

    # -- rebalancing (called inside consume/poll, on this thread) -----------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalancing = True
        owned = sorted(
            {
                tp.partition
                for tp in partitions
                if tp.topic in (self.topics.decisions, self.topics.outcomes)
            }
        )
        for p in list(self.join.tables):
            if p not in owned:
                self.join.drop(p)
        missing = [p for p in owned if p not in self.join.tables]
        if missing:
            restored = restore(self.settings, self.changelog, missing, self.options.restore_timeout)
            for p in missing:
                self.join.assign(p, restored[p])
            log.info("restored join partitions %s (%d entries)", missing, len(self.join))
        self.assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
        self.rebalancing = False

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # everything read so far is processed and committed (this thread is synchronous);
        # keep the tables until the next assignment tells which partitions stay ours
        self.rebalancing = True
        self.assigned = []
        # rewards not applied yet were not committed either: their next owner reads them
        self._forget_pending()
        self._rewards_paused = False

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # the group went on without us (session or poll interval expired): another
        # worker may have changed these tables meanwhile, so restore them on assignment
        self._on_revoke(consumer, partitions)
        for tp in partitions:
            self.join.drop(tp.partition)


def _source(msg: Any) -> Source:
    """Where a consumed message came from (for its DLQ record)."""
    return Source(msg.topic(), msg.partition(), msg.offset(), msg.key())


def ensure_changelog(settings: Settings, topics: Topics, changelog: str) -> None:
    """Create the changelog (compacted, as many partitions as decisions) if missing."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka_config(settings))
    meta = admin.list_topics(timeout=30)
    n = partition_count(meta, topics.decisions)
    if n is None:
        raise RuntimeError(
            f"topic {topics.decisions!r} does not exist; create the topics first "
            "(`rl-commons dev` or `rl-commons policy create` do it)"
        )
    have = partition_count(meta, changelog)
    if have is not None:
        if have != n:
            raise RuntimeError(
                f"changelog {changelog!r} has {have} partitions, {topics.decisions!r} has {n}; "
                "delete the changelog topic (it is rebuilt from nothing) or use another --app-id"
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
            raise
    deadline = time.monotonic() + 30
    while partition_count(admin.list_topics(timeout=30), changelog) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"changelog {changelog!r} did not appear")
        time.sleep(0.1)


def restore(
    settings: Settings, changelog: str, partitions: list[int], timeout: float = 120.0
) -> dict[int, dict[str, Any]]:
    """The tables of ``partitions`` read from the changelog, from the start to its end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(kafka_config(settings, "consumer", **{"group.id": f"{changelog}-restore"}))
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
                    raise RuntimeError(f"restoring {changelog} timed out; left {ends}")
                for m in c.consume(5000, 0.2):
                    if m.error() is not None:
                        continue
                    p = m.partition()
                    v = m.value()
                    records[p].append((m.key(), None if v is None else json.loads(v)))
                    if p in ends and m.offset() + 1 >= ends[p]:
                        del ends[p]
    finally:
        c.close()
    return {p: restore_entries(recs) for p, recs in records.items()}
