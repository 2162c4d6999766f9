"""Exactly-once bookkeeping with positions (both stores): offset watermarks per rewards
partition, re-sent copies remembered for a bounded window of stream time, the dimension
checked against the stored config, sums that would not be finite refused."""

from __future__ import annotations

import pytest

from policy_store import (
    InMemoryPolicyStore,
    InvalidDeltaError,
    Observation,
    aggregate,
    make_config,
)
from policy_store._store import DEDUPE_BUCKET_SECONDS, ApplyRequest

T0 = 1_700_000_000.0


class _Clock:
    def __init__(self, t: float = T0 + 10_000) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "redis"])
def store(request, redis_client, key_prefix):
    clock = _Clock()
    if request.param == "memory":
        s = InMemoryPolicyStore(clock=clock)
    else:
        from policy_store import RedisPolicyStore

        s = RedisPolicyStore(redis_client, prefix=key_prefix, clock=clock)
    s.create(make_config(name="p", arms=["a", "b"], n_features=2))
    return s


def _obs(i: int, offset: int, partition: int = 0, made_at: float | None = None, arm: str = "a"):
    made = T0 + offset if made_at is None else made_at
    return Observation(f"d{i}", arm, (1.0, 0.5), 1.0, position=(partition, offset, made))


def _n(store) -> float:
    return sum(s.n for s in store.read_state("p").arms.values())


def test_a_replayed_batch_is_skipped_by_its_watermark(store):
    batch = [_obs(i, i) for i in range(10)]
    first = store.apply("p", batch)
    again = store.apply("p", batch)
    assert (first.applied, again.applied, again.duplicates) == (10, 0, 10)
    assert again.version == first.version  # nothing changed: no new version
    assert _n(store) == 10


def test_an_overlapping_batch_applies_only_what_is_past_the_watermark(store):
    store.apply("p", [_obs(i, i) for i in range(10)])
    res = store.apply("p", [_obs(i, i) for i in range(5, 15)])
    assert (res.applied, res.duplicates) == (5, 5)
    assert res.already_applied == frozenset(f"d{i}" for i in range(5, 10))
    assert _n(store) == 15


def test_watermarks_are_per_partition(store):
    store.apply("p", [_obs(i, i, partition=0) for i in range(10)])
    res = store.apply("p", [_obs(100 + i, i, partition=1) for i in range(10)])
    assert res.applied == 10 and _n(store) == 20


def test_two_workers_interleaving_on_one_partition_count_each_offset_once(store):
    # the new owner applies 0..5 while the old one still holds 0..9 (session expired)
    store.apply("p", [_obs(i, i) for i in range(6)])
    late = store.apply("p", [_obs(i, i) for i in range(10)])
    assert (late.applied, late.duplicates) == (4, 6)
    assert store.apply("p", [_obs(i, i) for i in range(6, 10)]).applied == 0
    assert _n(store) == 10


def test_a_resent_copy_is_a_duplicate_within_the_window(store):
    store.apply("p", [_obs(1, 0, made_at=T0)])
    copy = _obs(1, 7, made_at=T0)  # the tombstone re-sends the same reward, later offset
    res = store.apply("p", [_obs(2, 5, made_at=T0 + 200), copy])
    assert (res.applied, res.duplicates, res.already_applied) == (1, 1, frozenset({"d1"}))
    assert _n(store) == 2


def test_an_all_duplicate_batch_still_moves_the_watermark(store):
    store.apply("p", [_obs(1, 0, made_at=T0)])
    assert store.apply("p", [_obs(1, 3, made_at=T0)]).applied == 0  # a re-sent copy
    # far later in stream time the id is forgotten, but offset 3 is below the watermark
    store.apply("p", [_obs(2, 4, made_at=T0 + 5_000)])
    assert store.apply("p", [_obs(1, 3, made_at=T0)]).duplicates == 1
    assert _n(store) == 2


def test_ids_are_forgotten_after_the_window_of_stream_time(store):
    window = 120.0
    store.apply("p", [_obs(1, 0, made_at=T0)], dedupe_window=window)
    # the partition's clock moves with the rewards' times, not with the wall clock
    store._clock.t += 10 * window
    res = store.apply("p", [_obs(1, 1, made_at=T0)], dedupe_window=window)
    assert res.duplicates == 1, "the wall clock moved, the stream did not: still remembered"
    later = T0 + window + 2 * DEDUPE_BUCKET_SECONDS
    store.apply("p", [_obs(2, 2, made_at=later)], dedupe_window=window)
    res = store.apply("p", [_obs(1, 3, made_at=T0)], dedupe_window=window)
    assert res.applied == 1  # beyond the re-send window: a new reward (documented bound)


def test_bookkeeping_is_bounded_by_the_window_not_the_history(store, redis_client):
    window = 300.0
    for minute in range(30):  # 30 minutes of stream time, 20 rewards a minute
        batch = [
            _obs(minute * 100 + i, minute * 20 + i, made_at=T0 + 60 * minute + 3 * i)
            for i in range(20)
        ]
        store.apply("p", batch, dedupe_window=window)
    assert _n(store) == 600
    remembered = _remembered_ids(store, redis_client)
    # at most window + one bucket of stream time: 6 buckets of 20, never the 600 applied
    assert 100 <= remembered <= 20 * (window / 60 + 1)


def _remembered_ids(store, redis_client) -> int:
    if isinstance(store, InMemoryPolicyStore):
        return sum(len(ids) for ids in store._applied["p"].seen.values())
    keys = redis_client.keys(f"{store.keys('p').seen_prefix}:0:*")
    assert not redis_client.keys(f"{store.keys('p').base}:dedupe:*")
    return sum(redis_client.scard(k) for k in keys)


def test_a_batch_mixing_positions_and_none_is_refused(store):
    with pytest.raises(InvalidDeltaError, match="position"):
        store.apply("p", [_obs(1, 0), Observation("d2", "a", (1.0, 0.5), 1.0)])
    assert _n(store) == 0


def test_the_dimension_is_checked_against_the_stored_config(store):
    old = store.get_config("p")
    store.delete("p")
    store.create(make_config(name="p", arms=["a", "b"], n_features=3))
    stale = [Observation("d1", "a", (1.0, 0.5), 1.0)]
    with pytest.raises(InvalidDeltaError, match="n_features=3"):
        store._apply_deltas(ApplyRequest(old, stale, aggregate(stale, 2)))
    assert dict(store.read_state("p").arms) == {} and store.version("p") == 0


def test_sums_that_would_not_be_finite_are_refused_whole(store):
    big = (1e154, 1e154)
    store.apply("p", [Observation("d1", "b", (1.0, 1.0), 1.0)])
    store.apply("p", [Observation("d2", "a", big, 1.0)])
    before = store.read_state("p")
    batch = [Observation("d3", "b", (1.0, 1.0), 1.0), Observation("d4", "a", big, 1.0)]
    with pytest.raises(InvalidDeltaError, match="finite"):
        store.apply("p", batch)
    after = store.read_state("p")
    assert after.version == before.version
    assert {a: s.n for a, s in after.arms.items()} == {"a": 1.0, "b": 1.0}
    assert store.apply("p", [batch[0]]).applied == 1  # nothing of the refused batch stuck


def test_redis_arm_sums_of_another_size_start_from_zero(redis_store, redis_client):
    redis_store.create(make_config(name="q", arms=["a"], n_features=2))
    state = redis_store.keys("q").state
    redis_client.hset(state, mapping={"xx:a": b"\0" * 8, "b:a": b"\0" * 8, "n:a": "100"})
    redis_store.apply("q", [Observation("d1", "a", (1.0, 0.5), 1.0)])
    assert redis_store.read_state("q").arms["a"].n == 1.0  # not 101 with one in the sums


def test_redis_out_of_memory_is_a_clear_retryable_error(redis_store, redis_client):
    from policy_store import StoreUnavailableError

    redis_store.create(make_config(name="full", arms=["a"], n_features=2))
    before = redis_client.config_get("maxmemory")["maxmemory"]
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        redis_client.config_set("maxmemory-policy", "noeviction")
        redis_client.config_set("maxmemory", 1)  # below what is used: every write refused
        with pytest.raises(StoreUnavailableError, match="out of memory.*noeviction"):
            redis_store.apply("full", [Observation("d1", "a", (1.0, 0.5), 1.0)])
    finally:
        redis_client.config_set("maxmemory", before)
        redis_client.config_set("maxmemory-policy", policy)
    assert redis_store.apply("full", [Observation("d1", "a", (1.0, 0.5), 1.0)]).applied == 1
