"""The fake Kafka world the engine tests drive (see tests/unit/test_engine.py)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

from confluent_kafka import TopicPartition

from policy_store import InMemoryPolicyStore, StoreUnavailableError, make_config
from producers import DecisionEvent, OutcomeEvent, Topics
from stream_app._batch_join import JoinTables
from stream_app._checkpoint import restore_partition
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

    def append(self, topic: str, key: bytes, value: Any, partition: int = -1) -> Msg:
        if partition < 0:
            partition = zlib.crc32(key) % N_PARTITIONS
        log = self.logs[(topic, partition)]
        log.append(Msg(topic, partition, len(log), key, value))
        return log[-1]

    def records(self, topic: str) -> list[Msg]:
        return [m for (t, _p), log in sorted(self.logs.items()) if t == topic for m in log]


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.buffer: list[tuple[str, bytes, Any, int, Any]] = []

    def produce(
        self, topic: str, value: Any, key: bytes, partition: int = -1, on_delivery: Any = None
    ) -> None:
        self.broker.events.append(("produce", topic, key.decode(errors="replace")))
        self.buffer.append((topic, key, value, partition, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.broker.events.append(("flush",))
        for topic, key, value, partition, on_delivery in self.buffer:
            msg = self.broker.append(topic, key, value, partition)
            if on_delivery is not None:
                on_delivery(None, msg)
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

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        got = self.broker.committed
        return [
            TopicPartition(t.topic, t.partition, got.get((t.topic, t.partition), -1001))
            for t in tps
        ]

    def close(self) -> None:
        self.broker.events.append(("close",))


class FakeClients:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.consumers: list[FakeConsumer] = []
        self.reads: list[tuple[int, int, int]] = []

    def consumer(self, group_id: str) -> FakeConsumer:
        self.consumers.append(FakeConsumer(self.broker))
        return self.consumers[-1]

    def producer(self, on_delivery, every_delivery: bool = False) -> FakeProducer:
        return FakeProducer(self.broker)

    def ensure_changelog(self, changelog: str) -> None:
        self.broker.events.append(("ensure_changelog", changelog))

    def restore(self, changelog: str, partitions: list[int], timeout: float, starts=None):
        """Like ``ConfluentClients.restore``; every read is logged in ``reads``:
        (partition, first offset, records read)."""
        self.broker.events.append(("restore", sorted(partitions)))
        starts = starts or {}
        out = {}
        for p in partitions:
            records = [(m.offset(), m.key(), m.value()) for m in self.broker.logs[(changelog, p)]]
            start = starts.get(p)
            restored = None
            if start is not None:
                self.reads.append((p, start, len(records) - start))
                restored = restore_partition(records[start:], start)
            if restored is None:
                self.reads.append((p, 0, len(records)))
                restored = restore_partition(records)
            out[p] = restored
        return out


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
    def __init__(self, **options: Any) -> None:
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
        options = EngineOptions(batch_size=100, initial_backoff=1.0, max_backoff=4.0, **options)
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


def _order(events: list[tuple]) -> tuple[int, int, int, int, list[int]]:
    """First and last changelog write, first and last reward/DLQ write, flush positions."""
    out = ("produce", TOPICS.rewards), ("produce", TOPICS.dlq)
    changes = [i for i, e in enumerate(events) if e[:2] == ("produce", CHANGELOG)]
    sent = [i for i, e in enumerate(events) if e[:2] in out]
    flushes = [i for i, e in enumerate(events) if e == ("flush",)]
    return changes[0], changes[-1], sent[0], sent[-1], flushes
