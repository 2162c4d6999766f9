"""Objectives: the model's validation, the weights at λ, the target, its buffer and the
multiplier's update rule (pure functions, no services)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from policy_store import (
    COMPONENTS,
    ConfigError,
    Objective,
    PolicyConfig,
    RewardSpec,
    component_values,
    confidence_buffer,
    constraint_bound,
    constraint_target,
    dual_delta,
    make_config,
    objective_weights,
    reward_weights,
)

FLOOR = Objective(kind="quality_floor", quality_floor=0.8)
MARGIN = Objective(kind="quality_floor", quality_margin=0.01)
BUDGET = Objective(kind="budget", max_cost=0.2)


# -- the model and its validation ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kind": "quality_floor"}, "needs exactly one of quality_margin"),
        (
            {"kind": "quality_floor", "quality_margin": 0.01, "quality_floor": 0.8},
            "needs exactly one of quality_margin",
        ),
        ({"kind": "budget"}, "needs max_cost"),
        ({"kind": "budget", "max_cost": 0}, "max_cost"),
        ({"kind": "weighted", "max_cost": 0.1}, "max_cost belongs to kind='budget'"),
        ({"kind": "budget", "max_cost": 0.1, "quality_margin": 0.01}, "belong to kind="),
        ({"latency_weight": 0.2}, "set reward.latency_weight"),
        ({"kind": "pareto"}, "kind"),
        ({"kind": "budget", "max_cost": 0.1, "confidence": 1.0}, "confidence"),
        ({"kind": "budget", "max_cost": 0.1, "dual_step": 0}, "dual_step"),
    ],
)
def test_invalid_objective_names_the_fix(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        Objective(**fields)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (
            {"objective": {"kind": "quality_floor", "quality_margin": 0.01}},
            "set baseline_arm",
        ),
        (
            {"objective": {"kind": "budget", "max_cost": 0.05}, "reward": {"cost_cap": 0.02}},
            "not below reward.cost_cap 0.02",
        ),
        ({"objective": {"kind": "budget", "max_cost": 1.5}}, "set cost_cap"),
        ({"objective": {"kind": "budget"}}, "objective: kind='budget' needs max_cost"),
    ],
)
def test_config_refuses_inconsistent_objective(fields, needle):
    base = {"name": "p", "arms": ["a", "b"], "n_features": 2}
    with pytest.raises(ConfigError, match=needle):
        make_config({**base, **fields})


def test_config_objective_defaults_and_round_trips():
    cfg = make_config(name="p", arms=["a", "b"], n_features=2)
    assert cfg.objective == Objective() and not cfg.objective.constrained
    # the default objective is left out of the JSON (readable by older proxies)
    assert "objective" not in cfg.to_json()
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    cfg = cfg.with_changes(baseline_arm="a", objective=MARGIN)
    assert PolicyConfig.from_json(cfg.to_json()).objective == MARGIN
    budget = make_config(
        name="p",
        arms=["a"],
        n_features=2,
        reward={"cost_cap": 0.02},
        objective={"kind": "budget", "max_cost": 0.005},
    )
    assert constraint_target(budget.objective, budget.reward) == pytest.approx(0.25)


# -- weights at λ ----------------------------------------------------------------------------
def test_weighted_objective_weights_are_the_reward_weights():
    spec = RewardSpec(quality_weight=0.6, cost_weight=0.1, latency_weight=0.3)
    for dual in (0.0, 3.0):
        assert np.array_equal(objective_weights(Objective(), spec, dual), reward_weights(spec))


@pytest.mark.parametrize("dual", [0.0, 0.5, 4.0, 100.0])
def test_lagrangian_weights_rank_arms_as_the_lagrangian(dual):
    rng = np.random.default_rng(0)
    spec = RewardSpec()
    for obj in (
        FLOOR.model_copy(update={"latency_weight": 0.2}),
        BUDGET.model_copy(update={"latency_weight": 0.1}),
    ):
        w = objective_weights(obj, spec, dual)
        assert w.shape == (len(COMPONENTS),)
        v = np.array([component_values(spec, *rng.uniform(0, 1, 3)) for _ in range(50)])
        q, c, lat = v[:, 0], v[:, 1], v[:, 2]
        if obj.kind == "quality_floor":
            lagrangian = -c - 0.2 * lat + dual * (q - 0.8)
        else:
            lagrangian = q - 0.1 * lat - dual * (c - 0.2)
        # same order (the constant and the positive scale 1/(1+λ) do not change an argmax)
        assert np.argmax(v @ w) == np.argmax(lagrangian)
        assert np.allclose(np.diff(v @ w) * (1 + dual), np.diff(lagrangian))
        assert np.abs(w).max() <= 1.0 + 1e-12  # bounded whatever λ


def test_negative_dual_is_treated_as_zero():
    spec = RewardSpec()
    assert np.array_equal(objective_weights(FLOOR, spec, -1.0), objective_weights(FLOOR, spec, 0))


# -- target and buffer -----------------------------------------------------------------------
def test_targets():
    spec = RewardSpec()
    assert constraint_target(FLOOR, spec) == 0.8
    assert constraint_target(MARGIN, spec, baseline_quality=0.9) == pytest.approx(0.89)
    assert constraint_target(BUDGET, spec) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="baseline"):
        constraint_target(MARGIN, spec)
    with pytest.raises(ValueError, match="no constraint"):
        constraint_target(Objective(), spec)


def test_buffer_is_z_sd_over_root_n_and_shrinks_with_evidence():
    rng = np.random.default_rng(1)
    q = rng.uniform(0.6, 1.0, 10_000)
    buffers = []
    for n in (10, 100, 1000, 10_000):
        x = q[:n]
        b = confidence_buffer(FLOOR, x.sum(), (x * x).sum(), float(n))
        assert b == pytest.approx(1.6448536 * x.std(ddof=1) / np.sqrt(n), rel=1e-6)
        buffers.append(b)
    assert buffers == sorted(buffers, reverse=True) and buffers[-1] < 0.01
    # the target's own uncertainty adds in quadrature; no data: only that part
    x = q[:100]
    with_target = confidence_buffer(FLOOR, x.sum(), (x * x).sum(), 100.0, 0.001)
    assert with_target == pytest.approx(1.6448536 * np.sqrt(x.var(ddof=1) / 100 + 0.001))
    assert confidence_buffer(FLOOR, 0.0, 0.0, 0.0) == 0.0
    assert confidence_buffer(FLOOR, 0.0, 0.0, 0.0, 0.01) == pytest.approx(0.16448536)
    # confidence 0.5: no buffer
    flat = FLOOR.model_copy(update={"confidence": 0.5})
    assert confidence_buffer(flat, x.sum(), (x * x).sum(), 100.0) == 0.0


def test_buffer_keeps_the_realised_mean_on_the_safe_side():
    """The point of the buffer: a policy whose true mean is the bound is above the target in
    ≈ 95% of samples (it would be ≈ 50% without the buffer)."""
    rng = np.random.default_rng(2)
    target, n, sd = 0.8, 400, 0.15
    bound = constraint_bound(FLOOR, target, 1.6448536 * sd / np.sqrt(n))
    means = rng.normal(bound, sd, size=(4000, n)).mean(axis=1)
    assert 0.93 <= (means >= target).mean() <= 0.97
    assert constraint_bound(BUDGET, 0.2, 0.05) == pytest.approx(0.15)


# -- the multiplier's update rule ------------------------------------------------------------
def values(quality=0.5, cost=0.5, latency=0.5, error=False):
    return component_values(RewardSpec(), quality, cost, latency, error)


def test_quality_floor_step_sign_and_size():
    obj = FLOOR.model_copy(update={"dual_step": 2.0})
    assert dual_delta(obj, 0.8, [values(quality=0.6)]) == pytest.approx(0.4)  # under: λ up
    assert dual_delta(obj, 0.8, [values(quality=0.9)]) == pytest.approx(-0.2)  # over: λ down
    # an error delivers no quality: it counts fully against the floor
    assert dual_delta(obj, 0.8, [values(error=True)]) == pytest.approx(1.6)
    # a batch is the sum of its observations' steps, weighted
    batch = [values(quality=0.6), values(quality=0.9), values(quality=0.7)]
    assert dual_delta(obj, 0.8, batch, weights=[1.0, 1.0, 0.5]) == pytest.approx(
        2.0 * (0.2 - 0.1 + 0.5 * 0.1)
    )
    assert dual_delta(obj, 0.8, batch, step=1.0) == pytest.approx(0.2)


def test_budget_step_sign_and_size():
    obj = BUDGET.model_copy(update={"dual_step": 0.5})
    assert dual_delta(obj, 0.2, [values(cost=0.6)]) == pytest.approx(0.2)  # over budget: λ up
    assert dual_delta(obj, 0.2, [values(cost=0.1)]) == pytest.approx(-0.05)
    assert dual_delta(Objective(), 0.2, [values(cost=0.9)]) == 0.0


def test_default_steps_per_kind():
    assert FLOOR.step == 1.0 and BUDGET.step == 0.3 and Objective().step == 0.0
    assert FLOOR.model_copy(update={"dual_step": 0.1}).step == 0.1


def test_projected_multiplier_tracks_the_constraint():
    """λ ← max(0, λ + Δ) (the store's projection) on a two-arm world: λ rises while the
    realised quality is under the floor, stays at 0 when the constraint is slack, and the
    long-run mean quality of the greedy Lagrangian choice reaches the floor."""
    spec = RewardSpec()
    # arm 0: quality 0.9 at cost 0.8; arm 1: quality 0.6 at cost 0.1
    arms = [values(0.9, 0.8, 0.0), values(0.6, 0.1, 0.0)]
    for floor, expect_dual in ((0.75, True), (0.5, False)):
        obj = Objective(kind="quality_floor", quality_floor=floor)
        lam, served = 0.0, []
        for _ in range(4000):
            w = objective_weights(obj, spec, lam)
            a = int(np.argmax([np.dot(w, v) for v in arms]))
            served.append(arms[a][0])
            lam = max(0.0, lam + dual_delta(obj, floor, [arms[a]]))
        assert (lam > 0) == expect_dual
        mean_q = np.mean(served[2000:])
        if expect_dual:
            assert mean_q == pytest.approx(floor, abs=0.005)
        else:
            assert served[-1] == 0.6  # slack: the cheap arm, λ = 0


@pytest.mark.parametrize("name", ["policy_store._objective", "policy_store._constraint"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
