"""Policies held against a real redis-server: a Redis restored from an older snapshot,
and the deliberate deletion of a policy Redis lost."""

from __future__ import annotations

import pytest

from policy_store import PolicyRecord, UnknownPolicyError, make_config
from producers import RewardEvent
from stream_app import ConfigCache, Updater, held_policies
from stream_app.ops import read_policy_report
from stream_app.ops.cli import main


def _batch(lo: int, hi: int) -> tuple[list[RewardEvent], list[tuple[int, int]]]:
    rewards = [
        RewardEvent(
            decision_id=f"r{i}", policy="p", policy_version=0, arm="ab"[i % 2], cohort="rl",
            features=(1.0, 0.5), reward=0.5, components={"quality": 0.5}, propensity=0.5,
            decision_ts=100.0 + i, reward_ts=100.0 + i,
        )
        for i in range(lo, hi)
    ]  # fmt: skip
    return rewards, [(0, i) for i in range(lo, hi)]


def _keys(client, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}:*", count=1000))


def test_a_redis_restored_from_an_older_snapshot_holds_the_policy_until_rebuilt(
    redis_store, redis_client, key_prefix
):
    cfg = make_config(name="p", arms=["a", "b"], n_features=2)
    redis_store.create(cfg)
    cache = ConfigCache(redis_store)
    updater = Updater(redis_store, lost=cache.lost, waiting=cache.waiting, versions=cache)
    assert updater.apply(*_batch(0, 5)).applied == 5
    snapshot = {k: redis_client.dump(k) for k in _keys(redis_client, key_prefix)}  # SAVE
    assert updater.apply(*_batch(5, 10)).applied == 5  # committed by the worker
    for k in _keys(redis_client, key_prefix):  # Redis restarted from the older snapshot
        redis_client.delete(k)
    for k, raw in snapshot.items():
        redis_client.restore(k, 0, raw)
    assert sum(s.n for s in redis_store.read_state("p").arms.values()) == 5

    res = updater.apply(*_batch(10, 15))
    assert res.applied == 0 and not res.rejected and len(res.held) == 5
    assert "older snapshot" in res.held_policies["p"] and "--replace" in res.held_policies["p"]
    assert "older snapshot" in held_policies(redis_store)["p"]["reason"]
    assert "older snapshot" in read_policy_report(redis_store, "p").held
    assert len(updater.apply(*_batch(10, 15)).held) == 5  # still held: nothing rebuilt

    # what `rl-commons rebuild p --replace` does first: a new epoch, the record's cuts
    redis_store.restore(PolicyRecord("p", "create", cfg.to_json(), 1.0, 0.0), replace=True)
    res = updater.apply(*_batch(10, 15))
    assert res.applied == 5 and not res.held and "p" not in held_policies(redis_store)


def test_a_version_that_only_grows_is_not_held(redis_store):
    """Resets, other workers' applies and a re-created policy (a new epoch) are no rollback."""
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    cache = ConfigCache(redis_store)
    updater = Updater(redis_store, lost=cache.lost, waiting=cache.waiting, versions=cache)
    updater.apply(*_batch(0, 5))
    redis_store.reset("p")
    Updater(redis_store).apply(*_batch(5, 10))  # another worker
    assert updater.apply(*_batch(10, 15)).applied == 5
    redis_store.delete("p")
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    res = updater.apply(*_batch(15, 20))
    assert res.applied == 5 and not res.held


def test_policy_delete_records_the_deletion_of_a_policy_redis_lost(
    redis_store, redis_client, key_prefix, capsys
):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    cache = ConfigCache(redis_store)
    updater = Updater(redis_store, lost=cache.lost, waiting=cache.waiting, versions=cache)
    assert cache.get("p") is not None  # the join looked it up
    updater.apply(*_batch(0, 5))
    for k in _keys(redis_client, key_prefix):  # the wipe
        redis_client.delete(k)
    assert updater.apply(*_batch(5, 10)).held  # the worker holds it and lists it
    with pytest.raises(UnknownPolicyError, match="hold its rewards"):
        read_policy_report(redis_store, "p")
    cli = ["--redis-url", redis_store.url, "--key-prefix", key_prefix]
    assert main(["policy", "delete", "ghost", "--yes", *cli]) != 0  # neither held nor there
    assert main(["policy", "delete", "p", "--yes", *cli]) == 0
    assert "recorded the deletion" in capsys.readouterr().out
    [(_, fields)] = redis_client.xrange(f"{key_prefix}:changes", "-", "+")[-1:]
    record = PolicyRecord.from_bytes(fields[b"record"])
    assert (record.name, record.change, record.config) == ("p", "delete", None)
    cache.on_record(record)  # relayed: the worker lets its rewards go
    res = updater.apply(*_batch(5, 10))
    assert not res.held and {reason for _, reason, _ in res.rejected} == {"unknown_policy"}
