"""Config changes recorded by the store itself and relayed to the compacted policies topic;
rebuild honours the record's cuts (creation, reset) and refuses what it cannot restore."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from policy_store import ConfigError, Observation, make_config
from producers import RewardEvent
from stream_app import ChangeRelay, read_policy_records, rebuild


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
    """Whoever calls the store (the CLI, the dashboard, the LiteLLM handler's
    ``store.create(config, exist_ok=True)``, a selector) records the change with it."""
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    redis_store.create(make_config(name="q", arms=["a"], n_features=1))
    redis_store.create(make_config(name="q", arms=["a"], n_features=1), exist_ok=True)
    redis_store.update_config("p", rollout_fraction=0.5)
    redis_store.delete("q")
    seen = []
    relay = ChangeRelay(redis_store, settings, on_change=seen.append, block_ms=100)
    while relay.relay_once():
        pass
    assert [(r.name, r.change) for r in seen] == [
        ("p", "create"), ("q", "create"), ("p", "config"), ("q", "delete"),
    ]  # fmt: skip
    records = read_policy_records(settings, timeout=10)
    assert set(records) == {"p"} and records["p"].change == "config"
    assert '"rollout_fraction": 0.5' in records["p"].config
    assert relay.relay_once() == 0  # the shared cursor moved past them


def test_rebuild_skips_rewards_before_the_last_reset_and_refuses_an_existing_policy(
    redis_store, settings, topics
):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    created = float(redis_store.client.hget(redis_store.keys("p").extra("record"), "created_at"))
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
    redis_store.reset("p")  # recorded with its cut: the watermarks at the reset
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


def test_a_policy_created_by_store_create_alone_is_rebuildable(redis_store, settings, topics):
    """The LiteLLM proxy handler creates its policies with ``store.create(config,
    exist_ok=True)`` and nothing else: the store's own record is enough to rebuild it, and
    creating it again when it exists records nothing (the creation cut does not move)."""
    cfg = make_config(name="p", arms=["a", "b"], n_features=2, rollout_fraction=0.123456789012345)
    redis_store.create(cfg, exist_ok=True)
    redis_store.create(cfg, exist_ok=True)  # the next proxy start
    created = float(redis_store.client.hget(redis_store.keys("p").extra("record"), "created_at"))
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(4):
        producer.produce(topics.rewards, _reward(i, "ab"[i % 2], created + 1), f"r{i}".encode(), 0)
    producer.flush(10)
    _relay(redis_store, settings)
    [record] = read_policy_records(settings, timeout=10).values()
    assert (record.change, record.created_at) == ("create", created)
    redis_store.client.flushdb()  # the wipe
    [result] = rebuild(settings, redis_store, ["p"], timeout=10).values()
    assert result.applied == 4 and redis_store.get_config("p") == cfg  # every digit kept
    assert redis_store.head("p").epoch is not None


def test_deleting_a_policy_redis_lost_records_its_deletion(redis_store, settings):
    redis_store.create(make_config(name="p", arms=["a"], n_features=1))
    redis_store.client.delete(redis_store.keys("p").config)  # lost, not deleted
    redis_store.create(make_config(name="q", arms=["a"], n_features=1))
    with pytest.raises(ConfigError, match="is in Redis"):
        redis_store.record_deletion("q")  # a policy Redis holds is deleted, not only recorded
    record = redis_store.record_deletion("p")
    assert (record.change, record.config) == ("delete", None)
    assert not redis_store.client.keys(f"{redis_store.keys('p').base}:*")
    _relay(redis_store, settings)
    assert set(read_policy_records(settings, timeout=10)) == {"q"}
