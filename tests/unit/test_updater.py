"""``Updater`` with an aggregate sink: what the dashboard gets, and what a replay adds."""

from __future__ import annotations

import pytest
import redis

from policy_store import InMemoryPolicyStore, StoreUnavailableError, make_config
from producers import RewardEvent
from stream_app._updater import Updater
from stream_app.aggregates import AppliedBatch, RedisAggregates


def _reward(i: int, arm: str = "a", cohort: str = "rl") -> RewardEvent:
    return RewardEvent(
        decision_id=f"d{i}",
        policy="p",
        policy_version=0,
        arm=arm,
        features=(1.0, 0.0),
        reward=0.5,
        components={"quality": 0.5},
        propensity=0.5,
        cohort=cohort,
        decision_ts=1.0,
        reward_ts=2.0,
        outcome_ts=1.5,
    )


class _Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, AppliedBatch]] = []

    def add_batch(self, policy: str, batch: AppliedBatch) -> None:
        self.batches.append((policy, batch))

    def add_health(self, counts) -> None:  # pragma: no cover - not called by the updater
        raise AssertionError


def test_the_sink_gets_only_fresh_rewards_and_a_replay_adds_none():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    sink = _Sink()
    clock = iter([10.0, 10.25, 20.0, 20.5]).__next__
    updater = Updater(store, sink=sink, clock=clock)
    batch = [_reward(1), _reward(2, "b", "shadow"), _reward(1)]  # d1 twice in one batch
    first = updater.apply(batch)
    again = updater.apply(batch)  # a replay after a crash
    assert (first.applied, first.duplicates) == (2, 1)
    assert (again.applied, again.duplicates) == (0, 3)
    [(p1, b1), (p2, b2)] = sink.batches
    assert p1 == p2 == "p"
    assert [r.decision_id for r in b1.fresh] == ["d1", "d2"] and b2.fresh == []
    assert (b1.applied, b1.duplicates, b1.latency, b1.lag, b1.now) == (2, 1, 0.25, 8.75, 10.25)
    assert store.read_state("p").arms["a"].n == 1.0


class _DownPipeline:
    def __getattr__(self, name):
        return lambda *a, **kw: None

    def execute(self):
        raise redis.ConnectionError("connection refused")


class _DownClient:
    def pipeline(self, transaction: bool = False):
        return _DownPipeline()


def test_redis_aggregates_report_an_unreachable_redis_as_store_unavailable():
    sink = RedisAggregates(_DownClient(), "rlc")  # type: ignore[arg-type]
    batch = AppliedBatch([_reward(1)], 1, 0, 0.001, 0.01, 100.0)
    with pytest.raises(StoreUnavailableError, match="RL_COMMONS_REDIS_URL"):
        sink.add_batch("p", batch)
    with pytest.raises(StoreUnavailableError):
        sink.add_health({"p": {"rewards": 1}})
