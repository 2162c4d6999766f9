"""``BatchEngine``'s order of effects, with fake Kafka clients and an in-memory store.

A fake broker keeps each topic's partitions as lists; the fake producer makes records
visible only on ``flush`` and the fake consumer delivers rebalance callbacks inside
``consume``/``poll`` like librdkafka, honours ``pause`` and restarts from the committed
offsets after a rebalance. Every client call and every store apply is appended to one
log, so the tests read the engine's order of effects from it. The engine is driven one
loop turn at a time on the test's thread, with a fake clock.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from policy_store import InMemoryPolicyStore, StoreError, StoreUnavailableError, make_config
from producers import DecisionEvent, DLQRecord, OutcomeEvent, Topics
from stream_app._batch_join import JoinTables, decode_entry, restore_entries
from stream_app._engine import BatchEngine, EngineOptions
from stream_app._metrics import HealthBuffer, WorkerMetrics
from stream_app._updater import Updater

ARMS = ("a", "b")
N_PARTITIONS = 2
CFG = make_config(name="p", arms=ARMS, n_features=2, reward={"window_seconds": 30.0})
TOPICS = Topics(prefix="u.")
CHANGELOG = "app-join-changelog"


class Msg:
    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: Any) -> None:
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return self._k

    def value(self) -> Any:
        return self._v

    def error(self) -> None:
        return None


class Broker:
    def __init__(self) -> None:
        self.logs: dict[tuple[str, int], list[Msg]] = defaultdict(list)
        self.committed: dict[tuple[str, int], int] = {}
        self.events: list[tuple] = []

    def append(self, topic: str, key: bytes, value: Any, partition: int = -1) -> None:
        if partition < 0:
            partition = zlib.crc32(key) % N_PARTITIONS
        log = self.logs[(topic, partition)]
        log.append(Msg(topic, partition, len(log), key, value))

    def records(self, topic: str) -> list[Msg]:
        return [m for (t, _p), log in sorted(self.logs.items()) if t == topic for m in log]


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.buffer: list[tuple[str, bytes, Any, int]] = []

    def produce(self, topic: str, value: Any, key: bytes, partition: int = -1) -> None:
        self.broker.events.append(("produce", topic, key.decode()))
        self.buffer.append((topic, key, value, partition))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.broker.events.append(("flush",))
        for topic, key, value, partition in self.buffer:
            self.broker.append(topic, key, value, partition)
        self.buffer.clear()
        return 0


class FakeConsumer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.callbacks: dict[str, Any] = {}
        self.assigned: list[tuple[str, int]] = []
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.rebalances: list[tuple[str, list[tuple[str, int]]]] = []

    def subscribe(self, topics: list[str], on_assign, on_revoke, on_lost) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self.rebalances.append(("assign", [(t, p) for t in topics for p in range(N_PARTITIONS)]))

    def rebalance(self, how: str = "revoke") -> None:
        """The group rebalances: ``how`` (revoke or lost) now, the same partitions back."""
        self.rebalances += [(how, list(self.assigned)), ("assign", list(self.assigned))]

    def _deliver_rebalances(self) -> None:
        while self.rebalances:
            how, parts = self.rebalances.pop(0)
            tps = [TopicPartition(t, p) for t, p in parts]
            self.broker.events.append((how, sorted(parts)))
            if how == "assign":
                self.assigned, self.paused = parts, set()
                self.positions = {tp: self.broker.committed.get(tp, 0) for tp in parts}
            self.callbacks[how](self, tps)
            if how != "assign":
                self.assigned = []

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        self._deliver_rebalances()
        out: list[Msg] = []
        for tp in self.assigned:
            if tp in self.paused:
                continue
            log = self.broker.logs[tp]
            take = log[self.positions[tp] : self.positions[tp] + num_messages - len(out)]
            out += take
            self.positions[tp] += len(take)
        return out

    def poll(self, timeout: float) -> Msg | None:
        msgs = self.consume(1, timeout)
        return msgs[0] if msgs else None

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.assigned]

    def pause(self, tps: list[TopicPartition]) -> None:
        parts = sorted((tp.topic, tp.partition) for tp in tps)
        self.broker.events.append(("pause", parts))
        self.paused |= set(parts)

    def resume(self, tps: list[TopicPartition]) -> None:
        parts = sorted((tp.topic, tp.partition) for tp in tps)
        self.broker.events.append(("resume", parts))
        self.paused -= set(parts)

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        committed = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self.broker.events.append(("commit", sorted({t for t, _ in committed})))
        self.broker.committed.update(committed)

    def close(self) -> None:
        self.broker.events.append(("close",))


class FakeClients:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.consumers: list[FakeConsumer] = []

    def consumer(self, group_id: str) -> FakeConsumer:
        self.consumers.append(FakeConsumer(self.broker))
        return self.consumers[-1]

    def producer(self, on_delivery) -> FakeProducer:
        return FakeProducer(self.broker)

    def ensure_changelog(self, changelog: str) -> None:
        self.broker.events.append(("ensure_changelog", changelog))

    def restore(self, changelog: str, partitions: list[int], timeout: float):
        self.broker.events.append(("restore", sorted(partitions)))
        return {
            p: restore_entries(
                (m.key(), decode_entry(m.value())) for m in self.broker.logs[(changelog, p)]
            )
            for p in partitions
        }


class Store(InMemoryPolicyStore):
    """The in-memory store, unreachable while ``down``; applies are logged."""

    def __init__(self, events: list[tuple]) -> None:
        super().__init__()
        self.events = events
        self.down = False

    def apply(self, name, observations, **kw):
        observations = list(observations)
        if self.down:
            self.events.append(("apply failed", len(observations)))
            raise StoreUnavailableError("Redis unreachable (simulated)")
        self.events.append(("apply", len(observations)))
        return super().apply(name, observations, **kw)


class World:
    def __init__(self) -> None:
        self.now = 1000.0
        self.broker = Broker()
        self.store = Store(self.broker.events)
        self.store.create(CFG)
        self.clients = FakeClients(self.broker)
        metrics = WorkerMetrics()
        join = JoinTables(
            {"p": CFG}.get,
            default_window=5.0,
            retention=60.0,
            metrics=metrics,
            health=HealthBuffer(),
        )
        self.updater = Updater(self.store, metrics)
        options = EngineOptions(batch_size=100, initial_backoff=1.0, max_backoff=4.0)
        self.engine = BatchEngine(
            TOPICS,
            join,
            self.updater,
            self.clients,
            app_id="app",
            options=options,
            clock=lambda: self.now,
        )
        self.engine._open()

    @property
    def consumer(self) -> FakeConsumer:
        return self.clients.consumers[-1]

    def send_pair(self, i: int, arm: str = "a", outcome: bool = True) -> None:
        key = f"d{i}".encode()
        dec = DecisionEvent(
            decision_id=f"d{i}",
            policy="p",
            policy_version=0,
            timestamp=1.0,
            arms=ARMS,
            arm=arm,
            propensity=0.5,
            features=(1.0, 0.0),
        )
        self.broker.append(TOPICS.decisions, key, dec.to_bytes())
        if outcome:
            out = OutcomeEvent(
                decision_id=f"d{i}", timestamp=2.0, quality=1.0, cost=0.0, latency=0.0
            )
            self.broker.append(TOPICS.outcomes, key, out.to_bytes())

    def turns(self, n: int = 1, advance: float = 0.0) -> list[tuple]:
        """Run ``n`` loop turns (the clock moves ``advance`` s before each); their events."""
        start = len(self.broker.events)
        for _ in range(n):
            self.now += advance
            self.engine._turn()
        return self.broker.events[start:]

    def n(self) -> float:
        return sum(s.n for s in self.store.read_state("p").arms.values())

    def retries(self) -> float:
        return self.updater.metrics.apply_retries._value.get()


def _index(events: list[tuple], event: tuple) -> int:
    return events.index(event)


def _commits(events: list[tuple], topic: str) -> list[int]:
    return [i for i, e in enumerate(events) if e[0] == "commit" and topic in e[1]]


@pytest.fixture
def world() -> World:
    return World()


def _order(events: list[tuple]) -> tuple[int, int, int, int, list[int]]:
    """First and last changelog write, first and last reward/DLQ write, flush positions."""
    out = ("produce", TOPICS.rewards), ("produce", TOPICS.dlq)
    changes = [i for i, e in enumerate(events) if e[:2] == ("produce", CHANGELOG)]
    sent = [i for i, e in enumerate(events) if e[:2] in out]
    flushes = [i for i, e in enumerate(events) if e == ("flush",)]
    return changes[0], changes[-1], sent[0], sent[-1], flushes


def test_input_changes_are_flushed_before_its_rewards_and_apply_comes_before_commit(world):
    """A batch of input: table changes first (a replay then meets the tombstone and
    re-sends the very reward, never a new one), then rewards and DLQ, then the commit."""
    for i in range(3):
        world.send_pair(i)
    world.broker.append(TOPICS.decisions, b"bad", b"{not json")
    first = world.turns(1)
    assert first[:2] == [("assign", sorted(world.consumer.assigned)), ("restore", [0, 1])]
    produced = [e[1] for e in first if e[0] == "produce"]
    assert produced[:3] == [CHANGELOG] * 3  # one write per key and batch
    assert sorted(produced[3:]) == sorted([TOPICS.rewards] * 3 + [TOPICS.dlq])
    first_change, last_change, first_sent, last_sent, flushes = _order(first)
    assert last_change < flushes[0] < first_sent and last_sent < flushes[1]
    [commit] = [i for i, e in enumerate(first) if e[0] == "commit"]
    assert first[commit] == ("commit", [TOPICS.decisions, TOPICS.outcomes]) and commit > flushes[1]
    assert world.n() == 0  # the rewards are applied once they are read back

    second = world.turns(1)
    assert [e for e in second if e[0] in ("apply", "commit")] == [
        ("apply", 3),
        ("commit", [TOPICS.rewards]),
    ]
    assert world.n() == 3
    [dlq] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(dlq.value()).reason == "bad_json"


def test_store_outage_pauses_rewards_commits_nothing_of_them_and_applies_everything_once(world):
    for i in range(4):
        world.send_pair(i)
    world.turns(1)  # joined: 4 rewards on the topic
    world.store.down = True
    events = world.turns(1)
    assert ("apply failed", 4) in events and _commits(events, TOPICS.rewards) == []
    pause = [e for e in events if e[0] == "pause"]
    assert pause == [("pause", [(TOPICS.rewards, p) for p in range(N_PARTITIONS)])]
    assert world.retries() == 1

    # before the backoff (1 s) has passed nothing is retried; the join goes on meanwhile
    for i in range(4, 7):
        world.send_pair(i)
    events = world.turns(1, advance=0.5)
    assert not [e for e in events if e[0].startswith("apply")]
    assert _commits(events, TOPICS.decisions) and not _commits(events, TOPICS.rewards)
    # the new rewards wait on the paused partitions; the retry fails again, backoff 2 s
    events = world.turns(1, advance=0.6)
    assert [e for e in events if e[0].startswith("apply")] == [("apply failed", 4)]
    assert world.retries() == 2
    assert not [e for e in world.turns(1, advance=1.5) if e[0].startswith("apply")]

    world.store.down = False
    events = world.turns(1, advance=1.0)
    apply_ = _index(events, ("apply", 4))
    [commit] = _commits(events, TOPICS.rewards)
    resume = _index(events, ("resume", [(TOPICS.rewards, p) for p in range(N_PARTITIONS)]))
    assert apply_ < commit < resume
    events = world.turns(1)  # the rewards joined during the outage, read after the resume
    assert ("apply", 3) in events and _commits(events, TOPICS.rewards)
    assert world.n() == 7 and world.retries() == 2
    assert world.updater.metrics.duplicates.labels("rewards")._value.get() == 0


def test_on_revoke_pending_rewards_are_forgotten_not_committed_and_read_again(world):
    for i in range(3):
        world.send_pair(i)
    world.turns(1)
    world.store.down = True
    world.turns(1)
    assert world.engine._pending and world.retries() == 1
    world.consumer.rebalance("revoke")
    world.store.down = False
    events = world.turns(1)
    # the revoke dropped the pending rewards (uncommitted); the new assignment starts
    # unpaused from the committed offsets, so the same rewards come back and apply once
    assert events[0][0] == "revoke" and events[1][0] == "assign"
    assert ("restore", [0, 1]) not in events  # kept partitions keep their tables
    assert [e for e in events if e[0] in ("apply", "commit")] == [
        ("apply", 3),
        ("commit", [TOPICS.rewards]),
    ]
    assert world.n() == 3


def test_on_lost_the_tables_are_dropped_and_restored_from_the_changelog(world):
    for i in range(4):
        world.send_pair(i, outcome=False)  # open entries: decisions waiting for outcomes
    world.turns(1)
    assert len(world.engine.join) == 4
    world.consumer.rebalance("lost")
    events = world.turns(1)
    assert events[:3] == [
        ("lost", sorted(world.consumer.assigned)),
        ("assign", sorted(world.consumer.assigned)),
        ("restore", [0, 1]),
    ]
    assert len(world.engine.join) == 4  # restored from the changelog, not kept
    for i in range(4):
        out = OutcomeEvent(decision_id=f"d{i}", timestamp=2.0, quality=1.0, cost=0.0, latency=0.0)
        world.broker.append(TOPICS.outcomes, f"d{i}".encode(), out.to_bytes())
    world.turns(2)
    assert world.n() == 4


def test_a_reward_the_store_refuses_goes_to_the_dlq_before_its_offset_is_committed(world):
    world.send_pair(0)
    world.turns(1)
    world.store.delete("p")  # the worker's config cache still knows the policy
    events = world.turns(1)
    dlq = _index(events, ("produce", TOPICS.dlq, "d0"))
    assert dlq < events.index(("flush",)) < _commits(events, TOPICS.rewards)[0]
    [rec] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(rec.value()).reason == "unknown_policy"


def test_out_of_memory_is_retried_counted_and_shown_as_the_reason_not_ready(world):
    for i in range(3):
        world.send_pair(i)
    world.turns(1)
    assert world.engine.ready and world.engine.problem is None
    real_apply = world.store.apply

    def full(name, observations, **kwargs):
        raise StoreUnavailableError("Redis at redis://x is out of memory (maxmemory reached)")

    world.store.apply = full
    sessions = len(world.clients.consumers)
    events = world.turns(3, advance=5.0)
    assert world.retries() == 3 and _commits(events, TOPICS.rewards) == []
    assert not world.engine.ready and "out of memory" in world.engine.problem
    assert len(world.clients.consumers) == sessions  # no consumer restart
    world.store.apply = real_apply
    events = world.turns(1, advance=5.0)
    assert _commits(events, TOPICS.rewards) and world.n() == 3
    assert world.engine.ready and world.engine.problem is None


def test_an_unexpected_store_error_is_retried_a_bounded_number_of_times_then_isolated(world):
    """A reward the store keeps refusing with an unexpected error (not the store being
    away): the batch is retried ``max_tries`` times with backoff, then split; the reward
    goes to the DLQ, every other one is applied and the partition moves on."""
    for i in range(6):
        world.send_pair(i)
    world.turns(1)
    real_apply = world.store.apply

    def refuses_d3(name, observations, **kwargs):
        observations = list(observations)
        if any(o.decision_id == "d3" for o in observations):
            raise StoreError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return real_apply(name, observations, **kwargs)

    world.store.apply = refuses_d3
    tries = world.updater.max_tries
    for k in range(1, tries):
        events = world.turns(1, advance=5.0)
        assert world.retries() == k and _commits(events, TOPICS.rewards) == []
        assert "WRONGTYPE" in world.engine.problem
    events = world.turns(1, advance=5.0)
    assert _commits(events, TOPICS.rewards) and world.engine.problem is None
    assert world.n() == 5
    [dlq] = [DLQRecord.model_validate_json(r.value()) for r in world.broker.records(TOPICS.dlq)]
    assert dlq.reason == "out_of_range" and "WRONGTYPE" in dlq.detail and dlq.key == "d3"


def test_a_sweep_sends_its_rewards_before_it_writes_its_tombstones(world):
    for i in range(3):
        world.send_pair(i, outcome=False)
    world.turns(1)
    for i in range(3):  # a partial outcome: the window closes with a reward
        out = OutcomeEvent(decision_id=f"d{i}", timestamp=2.0, cost=0.0)
        world.broker.append(TOPICS.outcomes, f"d{i}".encode(), out.to_bytes())
    world.turns(1)
    events = world.turns(1, advance=40.0)  # past the 30 s window: the sweep closes them
    first_change, last_change, first_sent, last_sent, flushes = _order(events)
    assert last_sent < flushes[0] < first_change and last_change < flushes[1]


def test_a_policy_whose_config_vanished_is_held_not_dead_lettered_until_it_is_back(world):
    """A wiped Redis: the config cache knew the policy and no deletion was recorded, so
    its rewards wait uncommitted (rewards partitions paused, ``problem`` says why) instead
    of going to the DLQ; once the config is back (rebuild or re-created) they apply."""
    from stream_app import ConfigCache

    cache = ConfigCache(world.store)
    assert cache.get("p") is not None
    world.updater.lost, world.updater.waiting = cache.lost, cache.waiting
    world.send_pair(0)
    world.turns(2)
    assert world.n() == 1
    world.store.delete("p")  # the wipe: nothing recorded it
    for i in range(1, 4):
        world.send_pair(i)
    world.turns(2)
    assert not world.broker.records(TOPICS.dlq)
    assert "rl-commons rebuild p" in world.engine.problem and not world.engine.ready
    assert world.consumer.paused == {(TOPICS.rewards, p) for p in (0, 1)}
    world.turns(2, advance=5.0)  # still lost: still held, nothing dead-lettered
    assert not world.broker.records(TOPICS.dlq) and len(world.engine._pending) == 3
    world.store.create(CFG)  # re-created by the operator (or rebuilt)
    events = world.turns(1, advance=5.0)
    assert world.n() == 3 and world.engine.problem is None  # d0's sums went with the wipe
    assert _commits(events, TOPICS.rewards) and not world.engine._rewards_paused


def test_a_recorded_deletion_dead_letters_as_before(world):
    from stream_app import ConfigCache, PolicyRecord

    cache = ConfigCache(world.store)
    cache.get("p")
    world.updater.lost, world.updater.waiting = cache.lost, cache.waiting
    world.store.delete("p")
    cache.on_record(PolicyRecord("p", "delete", None, 1.0, 0.0))
    world.send_pair(0)
    world.turns(2)
    [rec] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(rec.value()).reason == "unknown_policy"
    assert world.engine.problem is None
