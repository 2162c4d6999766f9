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
