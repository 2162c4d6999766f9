"""The Redis layout is readable with redis-cli and uses one hash tag per policy."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from policy_store import (
    Observation,
    PolicyReader,
    RedisPolicyStore,
    StoreError,
    StoreUnavailableError,
    UnknownPolicyError,
    aggregate,
    make_config,
)
from policy_store._store import ApplyRequest


def test_keys_share_one_hash_tag_and_state_is_float64_bytes(redis_store, redis_client, key_prefix):
    redis_store.create(make_config(name="route", arms=["x", "y"], n_features=2))
    redis_store.apply("route", [Observation("d1", "x", (1.0, 2.0), 0.5)])
    keys = sorted(k.decode() for k in redis_client.keys(f"{key_prefix}:*"))
    own_slot = {f"{key_prefix}:policies", f"{key_prefix}:changes"}  # registry, change log
    slotted = [k for k in keys if k not in own_slot]
    assert all("{route}" in k for k in slotted), keys
    assert f"{key_prefix}:{{route}}:dedupe:d1" in keys
    assert 0 < redis_client.ttl(f"{key_prefix}:{{route}}:dedupe:d1") <= 7 * 24 * 3600
    raw = redis_client.hget(f"{key_prefix}:{{route}}:state", "xx:x")
    np.testing.assert_array_equal(np.frombuffer(raw, "<f8"), [1.0, 2.0, 2.0, 4.0])
    assert redis_client.hget(f"{key_prefix}:{{route}}:state", "n:x") == b"1"
    assert redis_client.get(f"{key_prefix}:{{route}}:version") == b"1"
    # no pickle anywhere: the config is JSON
    assert redis_client.get(f"{key_prefix}:{{route}}:config").startswith(b"{")


def test_component_sums_and_multiplier_layout(redis_store, redis_client, key_prefix):
    redis_store.create(make_config(name="comp", arms=["x", "y"], n_features=2))
    state_key = f"{key_prefix}:{{comp}}:state"
    redis_store.apply("comp", [Observation("d0", "y", (1.0, 1.0), 0.5)])  # before components
    values = (0.75, 0.25, 0.5, 0.0, 1.0)
    obs = [
        Observation("d1", "x", (1.0, 2.0), 0.5, 1.0, values),
        Observation("d2", "y", (1.0, 0.0), 0.5, 2.0, values),
    ]
    redis_store.apply("comp", obs, dual_delta=0.5)
    raw = np.frombuffer(redis_client.hget(state_key, "y:x"), "<f8")
    C = 5
    assert raw.size == C * 2 + 2 * C  # y (C, d) row-major, then s, then s2
    np.testing.assert_array_equal(raw[: 2 * C].reshape(C, 2), np.outer(values, [1.0, 2.0]))
    np.testing.assert_array_equal(raw[2 * C : 3 * C], values)
    np.testing.assert_array_equal(raw[3 * C :], np.square(values))
    # x has no legacy Gram; y (data from before components) has one, of d2 only
    assert redis_client.hget(state_key, "xc:x") is None
    xc = np.frombuffer(redis_client.hget(state_key, "xc:y"), "<f8")
    np.testing.assert_array_equal(xc, [2.0, 0.0, 0.0, 0.0])
    assert redis_client.hget(state_key, "nc:y") == b"2"
    assert redis_client.hget(state_key, "dual") == b"0.5"


def test_state_written_before_components_reads_as_none_and_zero(redis_store, redis_client):
    """A state hash with only xx/b/n fields (older writers) has no component sums, λ = 0."""
    redis_store.create(make_config(name="old", arms=["x"], n_features=1))
    k = redis_store.keys("old")
    redis_client.hset(k.state, mapping={"xx:x": np.array([4.0]).tobytes(), "b:x": b"\0" * 8})
    redis_client.hset(k.state, "n:x", "4")
    st = redis_store.read_state("old")
    assert st.dual == 0.0 and st.arms["x"].components is None and st.arms["x"].n == 4.0


def test_version_published_on_channel(redis_store, redis_client):
    redis_store.create(make_config(name="pub", arms=["x"], n_features=1))
    ps = redis_client.pubsub()
    ps.subscribe(redis_store.keys("pub").channel)
    ps.get_message(timeout=1)  # subscribe confirmation
    redis_store.apply("pub", [Observation("d1", "x", (1.0,), 0.5)])
    msg = ps.get_message(timeout=2)
    assert msg and msg["data"] == b"1"
    ps.close()


def test_unreachable_redis_names_the_url_and_reader_keeps_snapshot():
    from stream_app.dev.embedded import EmbeddedRedis

    r = EmbeddedRedis().start()
    store = RedisPolicyStore.from_url(r.url, prefix="x")
    store.create(make_config(name="p", arms=["a", "b"], n_features=1))
    reader = PolicyReader(store, "p", poll_interval=0.02, seed=0)
    assert reader.version == 0
    r.stop()
    with pytest.raises(StoreUnavailableError, match=str(r.port)):
        store.get_config("p")
    with pytest.raises(StoreUnavailableError) as info:  # tools' own reads: the same errors
        store.run(store.client.get, store.keys("p").version)
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(StoreUnavailableError):
        store.watch("p")
    errors_before = reader.refresh_errors
    import time

    time.sleep(0.2)
    assert reader.refresh_errors > errors_before
    assert reader.select([1.0]).arm in ("a", "b")  # keeps serving from the last snapshot
    assert reader.staleness() >= 0.1
    reader.close()


def test_run_translates_any_redis_error(redis_store):
    redis_store.create(make_config(name="t", arms=["x"], n_features=1))
    key = redis_store.keys("t").config  # a string key: a list command on it is refused
    assert redis_store.run(redis_store.client.exists, key) == 1
    with pytest.raises(StoreError, match="WRONGTYPE") as info:
        redis_store.run(redis_store.client.lpush, key, "x")
    assert isinstance(info.value.__cause__, redis.ResponseError)
    assert not isinstance(info.value, StoreUnavailableError)


def test_config_deleted_under_a_batch_is_an_unknown_policy(redis_store, redis_client):
    config = redis_store.create(make_config(name="gone", arms=["x"], n_features=1))
    redis_client.delete(redis_store.keys("gone").config)
    deltas = aggregate([Observation("d1", "x", (1.0,), 1.0)], 1)
    with pytest.raises(UnknownPolicyError, match="no policy named 'gone'"):
        obs = [Observation("d1", "x", (1.0,), 1.0)]
        redis_store._apply_deltas(ApplyRequest(config, obs, deltas))  # the script finds no config
