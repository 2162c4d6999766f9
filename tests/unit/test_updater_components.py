"""The updater turns rewards into observations that carry the reward's component values."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import (
    COMPONENTS,
    InMemoryPolicyStore,
    RewardSpec,
    component_values,
    make_config,
    reward_weights,
)
from producers import RewardEvent
from stream_app import to_observations
from stream_app._rewards import make_reward
from stream_app._updater import Updater

SPEC = RewardSpec(cost_cap=0.1, latency_cap_ms=2000.0, reward_on_expiry=0.2, default_cost=0.4)
OUTCOMES = [
    {"quality": 0.9, "cost": 0.05, "latency": 500.0},
    {"quality": 0.7},  # cost and latency missing: defaults
    {"error": True, "cost": 0.02},
    {"quality": 1.5, "cost": 0.5, "latency": 9000.0},  # clipped
]


def rewards(spec: RewardSpec = SPEC) -> list[RewardEvent]:
    out = []
    for i, o in enumerate([*OUTCOMES, None]):
        decision = {
            "decision_id": f"d{i}",
            "policy": "p",
            "policy_version": 0,
            "arm": "ab"[i % 2],
            "features": (1.0, float(i)),
            "propensity": 0.5,
            "timestamp": 1.0,
        }
        reason = "expired" if o is None else "complete"
        out.append(make_reward(spec, decision, o, reason=reason, now=2.0))
    return out


def test_observations_carry_the_component_values_of_the_raw_outcome():
    obs = to_observations(rewards(), spec=SPEC)
    for o, raw in zip(obs, OUTCOMES, strict=False):
        assert o.components == component_values(SPEC, **raw)  # normalised once, not twice
        assert reward_weights(SPEC) @ np.array(o.components) == pytest.approx(o.reward)
    expired = obs[-1]
    assert expired.components == (0.5, 0.4, 0.5, 0.0, 1.0)  # the spec's defaults
    assert expired.reward == 0.2
    assert all(o.components is None for o in to_observations(rewards()))  # no spec: scalar


def test_updater_applies_component_sums_with_the_policys_spec():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2, reward=SPEC.model_dump()))
    Updater(store).apply(rewards()[:-1])  # an expired reward's components approximate it
    arms = store.read_state("p").arms
    for arm in ("a", "b"):
        c = arms[arm].components
        assert c is not None and not c.legacy
        assert c.s[COMPONENTS.index("one")] == arms[arm].n
        # with every observation carrying components, b is the reward's weights times y
        np.testing.assert_allclose(reward_weights(SPEC) @ c.y, arms[arm].b, atol=1e-12)
