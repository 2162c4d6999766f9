"""The engine: one consumer thread that joins, publishes and applies in batches.

Faust's per-event path costs ~100 µs of the worker's main thread per message (a bare
agent reads ~8,400 events/s on a 2-core box), and every reward needs three messages
(decision, outcome, reward) plus changelog writes, so Faust agents cannot reach
thousands of rewards/s. The engine reads the topics with a confluent-kafka consumer in
batches instead, in a thread of the Faust worker (which hosts the web server, timers
and lifecycle, ``app.py``). One loop turn:

    consume up to ``batch_size`` messages of decisions, outcomes and rewards
    -> join decisions/outcomes (``JoinTables``): rewards, DLQ records, table changes
    -> produce the table changes to the changelog, flush; produce rewards + DLQ, flush
    -> commit the offsets of the batch's decisions and outcomes
    -> apply the rewards read so far, with their (partition, offset) in the rewards
       topic, through the store's idempotent ``apply`` (retrying with backoff while the
       store is down or out of memory: nothing is committed meanwhile, the rewards
       partitions are paused, the join goes on, ``problem`` says why)
    -> commit the offsets of those rewards
    -> every ``sweep_interval`` s close the windows that passed (rewards, then tombstones)

Every worker with the same app id is one consumer group, ``<app id>-engine``
(``range`` assignment, so a worker owns partition ``p`` of decisions, outcomes and
rewards alike). On assignment a partition's table is restored from its last checkpoint
in ``<app id>-join-changelog`` partition ``p`` (``_checkpoint``). A crash before a commit replays
the batch: the restored table may be ahead of the input (changelog flushed, offsets
not committed), and a replayed message then meets the entry's tombstone, which
re-sends the stored reward (the same ``reward_ts``: the changelog goes first, so a
replay never makes a reward anew). The store skips rewards at or below its partition's
watermark and re-sent copies within the dedupe window, so nothing counts twice and
nothing is lost.

The Kafka clients come from a ``KafkaClients`` (``_clients``), so the order above is
unit-tested with fakes (tests/unit/test_engine.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy_store import StoreError
from producers import EventError, RewardEvent, Topics

from ._batch_join import DECISIONS, OUTCOMES, JoinTables, Outputs, Source, encode_entry
from ._checkpoint import Checkpoints
from ._clients import KafkaClients
from ._errors import DeliveryError
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
    checkpoint_every: int = 10_000  # changes between checkpoints of a table, at least ...
    checkpoint_ratio: float = 4.0  # ... and this many times its live entries; 0: never


class Backoff:
    """Exponential backoff: ``initial``, doubling up to ``maximum``, until ``reset``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._delay = initial

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long (capped)."""
        delay = self._delay
        self._delay = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._delay = self.initial


class BatchEngine:
    """Runs the join and the updater of one worker in a thread (``start`` / ``stop``)."""

    def __init__(
        self,
        topics: Topics,
        join: JoinTables,
        updater: Updater,
        clients: KafkaClients,
        *,
        app_id: str,
        options: EngineOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self.group_id = f"{app_id}-engine"
        self.changelog = f"{app_id}-join-changelog"
        self.join = join
        self.updater = updater
        self.clients = clients
        self.options = opts = options or EngineOptions()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._delivery_errors: list[str] = []
        self.assigned: list[str] = []
        self.rebalancing = True
        self.error: BaseException | None = None
        # why rewards are not being applied now (store down, out of memory, ...), or None
        self.problem: str | None = None
        self._next_sweep = 0.0
        # rewards read but not applied yet (kept while the store is down), offsets to commit
        self._pending: list[tuple[RewardEvent, Any]] = []
        self._reward_offsets: dict[tuple[str, int], int] = {}
        self._retry_at = 0.0
        self._apply_backoff = Backoff(opts.initial_backoff, opts.max_backoff)
        self._restart_backoff = Backoff(opts.initial_backoff, opts.max_backoff)
        self._rewards_paused = False
        self.checkpoints = Checkpoints(self.changelog, opts.checkpoint_every, opts.checkpoint_ratio)

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
        """Owns partitions, is not rebalancing and applies its rewards (``problem`` None)."""
        return bool(self.assigned) and not self.rebalancing and self.problem is None

    def _run(self) -> None:
        self._restart_backoff.reset()
        while not self._stop.is_set():
            try:
                self._session()
                return
            except Exception as exc:  # a broken client: start over from the committed offsets
                self.error = exc
                log.exception("stream engine failed; restarting from the committed offsets")
                self._stop.wait(self._restart_backoff.next())

    def _session(self) -> None:
        try:
            self._open()
            while not self._stop.is_set():
                self._turn()
        finally:
            self._close()

    def _open(self) -> None:
        """Clients, a clean state and the subscription (assignment comes inside ``consume``)."""
        self.clients.ensure_changelog(self.changelog)
        self._producer = self.clients.producer(self._on_delivery)
        self._consumer = self.clients.consumer(self.group_id)
        self.rebalancing = True
        self.join.tables.clear()
        self._forget_pending()
        self._rewards_paused = False
        self._consumer.subscribe(
            [self.topics.decisions, self.topics.outcomes, self.topics.rewards],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _turn(self) -> None:
        """One turn of the loop: a batch (if any), the pending apply, the sweep when due."""
        msgs = self._consume()
        if msgs:
            self._process(msgs)
        now = self._clock()
        self._apply_pending(now)
        if now >= self._next_sweep:
            self._next_sweep = now + self.options.sweep_interval
            self._sweep(now)
        self._checkpoint()

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        try:
            if consumer is not None:
                consumer.close()  # leaves the group at once: the partitions move now
        except Exception as exc:
            log.warning("closing the consumer failed: %s", exc)
        if producer is not None:
            producer.flush(5)
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
                    reward, _cfg = validate_reward(value, self.join.config, now)
                    self._pending.append((reward, msg))
                except EventError as exc:
                    self._reject_reward(out, msg, exc.reason, exc.detail, None, now)
                continue
            join_offsets[(topic, p)] = off + 1
            kind = DECISIONS if topic == dec else OUTCOMES if topic == outc else None
            if kind is not None:
                self.join.handle(kind, value, _source(msg), now, out)
        if n_rewards:
            self.updater.metrics.events_in.labels("rewards").inc(n_rewards)
        self._publish(out, changes_first=True)
        self._commit(join_offsets)

    def _apply_pending(self, now: float) -> None:
        """Apply the rewards read so far and commit their offsets; while the store is down
        (or out of memory, or answers another error the updater retries) keep them
        (uncommitted), pause the rewards partitions and retry with backoff while the join
        goes on; ``problem`` says why meanwhile."""
        if not self._reward_offsets or now < self._retry_at:
            return
        rewards = self._pending
        try:
            result = None
            if rewards:
                positions = [(m.partition(), m.offset()) for _, m in rewards]
                result = self.updater.apply([r for r, _ in rewards], positions)
        except StoreError as exc:  # StoreUnavailableError included: retried without bound
            delay = self._apply_backoff.next()
            self.updater.metrics.apply_retries.inc()
            if self.problem is None:
                log.warning("cannot apply rewards, retrying with backoff: %s", exc)
            self.problem = f"applying rewards: {exc}"
            self._retry_at = now + delay
            self._pause_rewards(True)
            return
        if result is not None and result.rejected:
            by_id = {r.decision_id: m for r, m in rewards}
            out = Outputs()
            for reward, reason, detail in result.rejected:
                msg = by_id[reward.decision_id]
                self._reject_reward(out, msg, reason, detail, reward.policy, now)
            self._publish(out)
        if result is not None and result.held:
            self._hold(rewards, result, now)
            return
        if self.problem is not None:
            log.info("applying rewards again after: %s", self.problem)
        self._commit(self._reward_offsets)
        self._forget_pending()
        self._pause_rewards(False)

    def _hold(self, rewards: list[tuple[RewardEvent, Any]], result: Any, now: float) -> None:
        """Rewards of policies whose config was lost (a wiped Redis): everything else of
        the batch is applied; commit each rewards partition up to its first held reward,
        keep the held ones (uncommitted), pause the rewards partitions and look again with
        backoff, until the config is back (``rl-commons rebuild`` or re-created)."""
        held_ids = {id(r) for r in result.held}
        keep = [(r, m) for r, m in rewards if id(r) in held_ids]
        offsets = dict(self._reward_offsets)
        for _, m in keep:
            key = (m.topic(), m.partition())
            offsets[key] = min(offsets[key], m.offset())
        self._commit(offsets)
        self._pending = keep
        problem = "; ".join(
            f"policy {name!r} held: {why}" for name, why in sorted(result.held_policies.items())
        )
        if problem != self.problem:
            log.warning("rewards wait uncommitted: %s", problem)
        self.problem = problem
        self._retry_at = now + self._apply_backoff.next()
        self._pause_rewards(True)

    def _reject_reward(
        self, out: Outputs, msg: Any, reason: str, detail: str, policy: str | None, now: float
    ) -> None:
        """A reward message the updater cannot use (invalid, or refused by the store): DLQ."""
        value = msg.value() or b""
        out.dlq.append(self.join.dlq_record(reason, detail, value, _source(msg), now, policy))

    def _forget_pending(self) -> None:
        self.problem = None  # whoever applies these rewards next finds out again
        self._pending = []
        self._reward_offsets = {}
        self._retry_at = 0.0
        self._apply_backoff.reset()

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
            raise DeliveryError(
                f"the broker did not acknowledge {left} records within 60 s ({errors}); "
                "check that it is reachable, the worker restarts from its committed offsets"
            )

    def _publish(self, out: Outputs, changes_first: bool = False) -> None:
        """Rewards and DLQ records, flushed, then the table changes, flushed (a sweep: its
        tombstones only once its rewards are sent); with ``changes_first`` (a batch of
        input, which is replayed if the worker dies before it is committed) the other way
        round, so a replay meets the tombstone and re-sends the very reward. Then the
        join's counters summed since the last publish go to the metrics."""
        if out:
            if changes_first:
                self._publish_changes(out)
            if out.rewards or out.dlq:
                for r in out.rewards:
                    self._produce(self.topics.rewards, r.decision_id.encode(), r.to_bytes())
                for rec in out.dlq:
                    key = rec.key.encode() if rec.key else b""
                    self._produce(self.topics.dlq, key, rec.to_bytes())
                self._flush()
            if not changes_first:
                self._publish_changes(out)
        self.join.flush_counts()

    def _publish_changes(self, out: Outputs) -> None:
        if out.changes:
            for (p, key), state in out.changes.items():
                self._produce(self.changelog, key.encode(), encode_entry(state), p)
            self._flush()
            self.checkpoints.note(out.changes)

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
        self.join.sweep(now, out)
        self._publish(out)

    def _checkpoint(self) -> None:
        """Write the next slice of the tables' checkpoints (every change is flushed by now),
        then commit where each one completed starts: a restore reads from there."""
        if not self.rebalancing:
            tables, clients = self.join.tables, self.clients
            self._commit(self.checkpoints.write(tables, clients, self._produce, self._flush))

    # -- rebalancing (called inside consume/poll, on this thread) -----------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalancing = True
        joined = (self.topics.decisions, self.topics.outcomes)
        owned = sorted({tp.partition for tp in partitions if tp.topic in joined})
        for p in list(self.join.tables):
            if p not in owned:
                self.join.drop(p)
        missing = [p for p in owned if p not in self.join.tables]
        if missing:
            timeout = self.options.restore_timeout
            restored = self.checkpoints.restore(self.clients, consumer, missing, timeout)
            for p in missing:
                self.join.assign(p, restored[p])
        self.assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
        self.rebalancing = False

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # everything read so far is processed and committed (this thread is synchronous);
        # keep the tables until the next assignment tells which partitions stay ours
        self.rebalancing = True
        self.assigned = []
        # rewards not applied yet were not committed either: their next owner reads them;
        # a new assignment starts unpaused
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
