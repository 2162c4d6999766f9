"""OPE of a stored policy's config and state (no services)."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import (
    ConfigError,
    Observation,
    PolicyState,
    aggregate,
    make_algorithm,
    make_config,
)
from producers import RewardComponents, RewardEvent
from stream_app.ops.report._evaluate import candidate_config, evaluate_policy, logged_data

# ε = 0.1: the logs contain every arm in every context, which OPE needs
CFG = make_config(name="p", arms=("a", "b"), n_features=2, algorithm={"epsilon": 0.1})


def learned_state(rng) -> PolicyState:
    obs = []
    for i in range(300):
        x = (1.0, float(rng.integers(0, 2)))
        arm = ("a", "b")[i % 2]
        obs.append(Observation(f"o{i}", arm, x, 0.9 if (arm == "b") == (x[1] == 1) else 0.2))
    return PolicyState(arms=aggregate(obs, 2), version=5)


def logs(state, rng, n=400, cohort="rl", config=CFG):
    algo = make_algorithm(config.algorithm)
    snap = algo.snapshot(state, config.arms, 2)
    out = []
    for i in range(n):
        x = np.array([1.0, float(rng.integers(0, 2))])
        sel = algo.select(snap, x, rng)
        r = 0.9 if (sel.arm == "b") == (x[1] == 1) else 0.2
        out.append(
            RewardEvent(
                decision_id=f"{cohort}{i}",
                policy="p",
                policy_version=5,
                arm=sel.arm,
                features=tuple(x),
                reward=r,
                components=RewardComponents(quality=r),
                propensity=sel.propensity,
                cohort=cohort,
                decision_ts=1.0,
                reward_ts=2.0,
            )
        )
    return out


def test_current_policy_on_its_own_logs_is_the_logged_mean():
    rng = np.random.default_rng(0)
    state = learned_state(rng)
    events = logs(state, rng)
    res = evaluate_policy(events, CFG, state)
    mean = np.mean([e.reward for e in events])
    assert res.current.ips.estimate == pytest.approx(mean)
    # true value: greedy arm (0.9) with probability 1 − ε/2, the other (0.2) with ε/2
    eps = CFG.algorithm.epsilon
    truth = (1 - eps / 2) * 0.9 + eps / 2 * 0.2
    assert res.current.dr.estimate == pytest.approx(truth, abs=0.02)
    assert res.version == 5


def test_candidate_that_explores_more_is_estimated_worse_with_the_true_gap_inside():
    rng = np.random.default_rng(1)
    state = learned_state(rng)
    events = logs(state, rng, n=2000)
    cand = candidate_config(CFG, {"algorithm": {"epsilon": 0.6}})
    assert cand.algorithm.alpha == CFG.algorithm.alpha  # untouched fields kept
    res = evaluate_policy(events, CFG, state, candidate=cand)
    # truth: the greedy arm earns 0.9, the other 0.2; ε spreads ε/2 onto the wrong arm
    true_gap = -(0.6 - CFG.algorithm.epsilon) / 2 * (0.9 - 0.2)
    assert res.candidate_minus_current.contains(true_gap)
    assert res.candidate_minus_current.high < 0
    assert "candidate − current" in res.to_text()


def test_logged_data_skips_other_cohorts_and_bad_dimensions():
    rng = np.random.default_rng(2)
    state = learned_state(rng)
    events = logs(state, rng, n=10) + logs(state, rng, n=5, cohort="baseline")
    events.append(events[0].model_copy(update={"features": (1.0,), "decision_id": "x"}))
    data, skipped = logged_data(events, CFG)
    assert data.n == 10
    assert skipped == {"other_cohorts": 5, "feature_length": 1, "other_policy": 0}


def test_nothing_to_evaluate_and_bad_candidates_explain_themselves():
    with pytest.raises(ValueError, match="no logged rewards"):
        evaluate_policy([], CFG, PolicyState(arms={}))
    with pytest.raises(ConfigError, match="epsilon"):
        candidate_config(CFG, {"algorithm": {"epsilon": 2}})
    with pytest.raises(ValueError, match="n_features"):
        candidate_config(CFG, {"n_features": 3})
