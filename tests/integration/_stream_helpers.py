"""Shared helpers of the stream integration tests: events, producing, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from policy_store import make_config
from producers import DecisionEvent, OutcomeEvent

ARMS = ("gpt-4", "claude-3", "llama")
D = 3


def make_policy(store, name: str = "route", **reward):
    spec = {"window_seconds": 30.0, **reward}
    return store.create(make_config(name=name, arms=ARMS, n_features=D, reward=spec))


def decision(i: int | str, arm: str = "gpt-4", policy: str = "route", **kw) -> DecisionEvent:
    fields = dict(
        decision_id=f"d{i}",
        policy=policy,
        policy_version=0,
        timestamp=time.time(),
        arms=ARMS,
        arm=arm,
        propensity=0.5,
        features=(1.0, 0.5, -0.5),
    )
    return DecisionEvent(**{**fields, **kw})


def outcome(i: int | str, **kw) -> OutcomeEvent:
    return OutcomeEvent(**{"decision_id": f"d{i}", "timestamp": time.time(), **kw})


FULL = dict(quality=0.9, cost=0.1, latency=0.2)


class Sender:
    """A plain confluent-kafka producer hashing keys like Faust (murmur2_random)."""

    def __init__(self, bootstrap: str, topics) -> None:
        from confluent_kafka import Producer

        self.topics = topics
        self.p = Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 2}
        )

    def send(self, event, topic: str | None = None, key: bytes | None = None) -> None:
        if topic is None:
            topic = self.topics.decisions if event.type == "decision" else self.topics.outcomes
        self.p.produce(topic, key=key or event.decision_id.encode(), value=event.to_bytes())
        self.p.poll(0)

    def raw(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.p.produce(topic, key=key, value=value)
        self.p.poll(0)

    def send_all(self, events: Iterable) -> None:
        for e in events:
            self.send(e)
        self.flush()

    def flush(self) -> None:
        assert self.p.flush(10) == 0


def wait_for(pred: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list:
    """Every message of ``topic`` up to its current end (all partitions, no group join).

    A partition is done at end-of-partition (``enable.partition.eof``): the embedded broker
    answers ListOffsets with the last batch's base offset + 1, so the high watermark it
    reports is only a lower bound of the end (used to skip empty partitions).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        parts = c.list_topics(topic, timeout=timeout).topics[topic].partitions
        pending = set()
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if hi > lo:
                pending.add(p)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        out = []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                continue
            out.append(m)
        return out
    finally:
        c.close()


def arm_counts(store, policy: str = "route") -> dict[str, float]:
    return {arm: st.n for arm, st in store.read_state(policy).arms.items()}
