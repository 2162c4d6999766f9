"""Reward computation as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy_store import RewardSpec
from stream_app._rewards import components_of, is_complete, make_reward, score

DECISION = {
    "decision_id": "d1",
    "policy": "p",
    "policy_version": 3,
    "timestamp": 100.0,
    "arm": "a",
    "features": [1.0, 0.0],
    "propensity": 0.5,
    "cohort": "rl",
}


def test_full_outcome_is_weighted_sum():
    spec = RewardSpec(quality_weight=0.5, cost_weight=0.3, latency_weight=0.2)
    o = {"quality": 0.8, "cost": 0.5, "latency": 0.25, "timestamp": 101.0}
    assert score(spec, o) == pytest.approx(0.5 * 0.8 + 0.3 * 0.5 + 0.2 * 0.75)
    r = make_reward(spec, DECISION, o, reason="complete", now=102.0)
    assert r.reward == pytest.approx(0.4 + 0.15 + 0.15)
    assert r.components.defaulted == ()
    assert (r.decision_id, r.arm, r.policy_version, r.outcome_ts) == ("d1", "a", 3, 101.0)


def test_caps_normalise_raw_units_once():
    spec = RewardSpec(cost_cap=0.02, latency_cap_ms=2000)
    o = {"quality": 1.0, "cost": 0.01, "latency": 500.0}
    c = components_of(spec, o)
    assert c.cost == pytest.approx(0.5) and c.latency == pytest.approx(0.25)
    assert score(spec, o) == pytest.approx(0.5 + 0.3 * 0.5 + 0.2 * 0.75)


def test_missing_components_take_defaults_and_are_listed():
    spec = RewardSpec(default_quality=0.2, default_cost=0.4, default_latency=0.6)
    o = {"cost": 0.0}
    assert score(spec, o) == pytest.approx(0.5 * 0.2 + 0.3 * 1.0 + 0.2 * 0.4)
    assert components_of(spec, o).defaulted == ("quality", "latency")


def test_error_gets_failure_reward_and_nothing_defaulted():
    spec = RewardSpec(failure_reward=-0.5)
    o = {"error": "timeout", "fallback_arm": "b", "latency": 0.9}
    r = make_reward(spec, DECISION, o, reason="final", now=1.0)
    assert r.reward == -0.5
    assert r.arm == "a"  # the chosen arm is blamed, not the fallback
    assert r.components.error and r.components.defaulted == ()


def test_expiry_reward_needs_reward_on_expiry():
    with pytest.raises(ValueError, match="reward_on_expiry"):
        make_reward(RewardSpec(), DECISION, None, reason="expired", now=1.0)
    r = make_reward(RewardSpec(reward_on_expiry=0.1), DECISION, None, reason="expired", now=1.0)
    assert r.reward == 0.1 and r.outcome_ts is None
    assert set(r.components.defaulted) == {"quality", "cost", "latency"}


def test_completeness_rules():
    spec = RewardSpec(required=("quality", "latency"))
    assert is_complete(spec, None) is None
    assert is_complete(spec, {"latency": 0.1}) is None
    assert is_complete(spec, {"latency": 0.1, "quality": 0.2}) == "complete"
    assert is_complete(spec, {"final": True}) == "final"
    assert is_complete(spec, {"error": "x"}) == "final"


@given(
    q=st.none() | st.floats(0, 1),
    c=st.none() | st.floats(0, 1e6),
    lat=st.none() | st.floats(0, 1e7),
    err=st.booleans(),
)
def test_reward_is_bounded(q, c, lat, err):
    spec = RewardSpec(cost_cap=0.1, latency_cap_ms=5000, failure_reward=0.0)
    o = {"quality": q, "cost": c, "latency": lat, "error": "e" if err else None}
    r = score(spec, o)
    total = spec.quality_weight + spec.cost_weight + spec.latency_weight
    assert 0.0 <= r <= total + 1e-12
