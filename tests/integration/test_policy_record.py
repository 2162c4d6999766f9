"""Config changes recorded and relayed to the compacted policies topic; rebuild honours the
record's cuts (creation, reset) and refuses what it cannot restore."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from policy_store import ConfigError, Observation, make_config
from producers import RewardEvent
from stream_app import (
    ChangeRelay,
    applied_marks,
    read_policy_records,
    rebuild,
    record_change,
)


def _relay(redis_store, settings) -> ChangeRelay:
    relay = ChangeRelay(redis_store, settings, block_ms=100)
    while relay.relay_once():
        pass
    return relay


def _reward(i: int, arm: str, ts: float) -> bytes:
    return RewardEvent(
        decision_id=f"r{i}", policy="p", policy_version=0, arm=arm, cohort="rl",
        features=(1.0, 0.5), reward=0.5, components={"quality": 0.5}, propensity=0.5,
        decision_ts=ts, reward_ts=ts,
    ).to_bytes()  # fmt: skip


def test_changes_reach_the_topic_and_a_deletion_is_a_tombstone(redis_store, settings):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    record_change(redis_store, "p", "create")
    redis_store.create(make_config(name="q", arms=["a"], n_features=1))
    record_change(redis_store, "q", "create")
    redis_store.update_config("p", rollout_fraction=0.5)
    record_change(redis_store, "p", "rollout")
    redis_store.delete("q")
    record_change(redis_store, "q", "delete")
    seen = []
    relay = ChangeRelay(redis_store, settings, on_change=seen.append, block_ms=100)
    while relay.relay_once():
        pass
    assert [(r.name, r.change) for r in seen] == [
        ("p", "create"), ("q", "create"), ("p", "rollout"), ("q", "delete"),
    ]  # fmt: skip
    records = read_policy_records(settings, timeout=10)
    assert set(records) == {"p"} and records["p"].change == "rollout"
    assert '"rollout_fraction": 0.5' in records["p"].config
    assert relay.relay_once() == 0  # the shared cursor moved past them


def test_rebuild_skips_rewards_before_the_last_reset_and_refuses_an_existing_policy(
    redis_store, settings, topics
):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    created = record_change(redis_store, "p", "create").created_at
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(10):
        producer.produce(topics.rewards, _reward(i, "ab"[i % 2], created + 1), f"r{i}".encode(), 0)
    producer.flush(10)
    positions = [(0, i, created + 1) for i in range(10)]
    obs = [
        Observation(f"r{i}", "ab"[i % 2], (1.0, 0.5), 0.5, 1.0, None, positions[i])
        for i in range(6)
    ]
    redis_store.apply("p", obs)  # the first six, as a worker would have
    marks = applied_marks(redis_store, "p")
    redis_store.reset("p")
    record_change(redis_store, "p", "reset", marks=marks)
    redis_store.apply("p", [Observation(f"r{i}", "ab"[i % 2], (1.0, 0.5), 0.5, 1.0, None,
                                        positions[i]) for i in range(6, 10)])  # fmt: skip
    lost = {a: s.n for a, s in redis_store.read_state("p").arms.items()}
    _relay(redis_store, settings)
    with pytest.raises(ConfigError, match="--replace"):
        rebuild(settings, redis_store, ["p"], timeout=10)
    redis_store.client.flushdb()  # the wipe
    [result] = rebuild(settings, redis_store, ["p"], timeout=10).values()
    assert (result.applied, result.skipped) == (4, 6)
    assert {a: s.n for a, s in redis_store.read_state("p").arms.items()} == lost
    with pytest.raises(ConfigError, match="no record"):
        rebuild(settings, redis_store, ["nope"], timeout=10)
