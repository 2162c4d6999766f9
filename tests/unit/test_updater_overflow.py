"""A reward whose finite features would overflow x·xᵀ is rejected alone; the rest applies."""

from __future__ import annotations

import numpy as np

from policy_store import InMemoryPolicyStore, make_config
from producers import RewardEvent
from stream_app._updater import Updater


def _reward(i: int, features: tuple[float, ...]) -> RewardEvent:
    return RewardEvent(
        decision_id=f"d{i}",
        policy="p",
        policy_version=0,
        arm="a",
        features=features,
        reward=0.5,
        components={"quality": 0.5},
        propensity=0.5,
        cohort="rl",
        decision_ts=1.0,
        reward_ts=2.0,
    )


def test_overflowing_reward_rejected_valid_ones_applied():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    batch = [_reward(1, (1.0, 0.0)), _reward(2, (1e200, 1.0)), _reward(3, (0.0, 1.0))]
    result = Updater(store).apply(batch)
    assert result.applied == 2
    assert [(r.decision_id, reason) for r, reason, _ in result.rejected] == [("d2", "out_of_range")]
    stats = store.read_state("p").arms["a"]
    assert stats.n == 2
    assert np.isfinite(stats.xx).all() and np.isfinite(stats.b).all()


def test_a_batch_whose_sum_overflows_is_split_until_the_poison_is_alone():
    """Each reward is finite alone; two huge ones together overflow. The store refuses the
    whole batch, the updater halves it until the reward that cannot be applied is alone:
    it is rejected, every other reward is applied once."""
    for seed, (i, j) in enumerate([(10, 30), (0, 49), (24, 25)]):
        store = InMemoryPolicyStore()
        store.create(make_config(name="p", arms=["a", "b"], n_features=2))
        batch = [_reward(k, (1.0, 0.5)) for k in range(50)]
        batch[i] = _reward(i, (1e154, 1e154))
        batch[j] = _reward(j, (1e154, 1e154))
        positions = [(0, 100 * seed + k) for k in range(50)]
        result = Updater(store).apply(batch, positions)
        assert [(r.decision_id, reason) for r, reason, _ in result.rejected] == [
            (f"d{j}", "out_of_range")
        ]
        assert result.applied == 49
        stats = store.read_state("p").arms["a"]
        assert stats.n == 49 and np.isfinite(stats.xx).all()
        # replaying the batch changes nothing: the watermark covers what was applied
        again = Updater(store).apply(batch, positions)
        assert again.applied == 0 and store.read_state("p").arms["a"].n == 49


class _StaleConfig(InMemoryPolicyStore):
    """A store whose first config read returns the config as it was before a re-create."""

    def __init__(self, stale):
        super().__init__()
        self.stale = stale

    def get_config(self, name):
        stale, self.stale = self.stale, None
        return stale if stale is not None else super().get_config(name)


def test_rewards_built_for_a_recreated_policy_go_to_the_dlq_as_feature_length():
    old = make_config(name="p", arms=["a", "b"], n_features=2)
    store = _StaleConfig(old)
    store.create(make_config(name="p", arms=["a", "b"], n_features=3))
    store.stale = old  # the policy was deleted and re-created with 3 features meanwhile
    batch = [_reward(k, (1.0, 0.5)) for k in range(5)]
    result = Updater(store).apply(batch, [(0, k) for k in range(5)])
    assert {reason for _, reason, _ in result.rejected} == {"feature_length"}
    assert len(result.rejected) == 5 and dict(store.read_state("p").arms) == {}
