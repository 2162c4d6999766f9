"""benchmarks/_worlds.py: exact expected values and exact constrained oracles."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def worlds():
    spec = importlib.util.spec_from_file_location("_worlds", ROOT / "benchmarks" / "_worlds.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_worlds"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("_worlds", None)


def brute_force(value: np.ndarray, spend: np.ndarray, limit: float) -> float:
    """Best mean value of a per-row arm distribution with mean spend ≤ limit.

    One constraint besides the simplexes: an optimal vertex randomises at most one
    row, i.e. it mixes two deterministic policies; try every pair."""
    T, K = value.shape
    rows = np.arange(T)
    policies = [np.array(p) for p in itertools.product(range(K), repeat=T)]
    v = np.array([value[rows, p].mean() for p in policies])
    s = np.array([spend[rows, p].mean() for p in policies])
    best = -np.inf
    for i in range(len(policies)):
        if s[i] <= limit + 1e-12:
            best = max(best, v[i])
        for j in range(len(policies)):
            if s[i] > limit >= s[j]:
                p = (s[i] - limit) / (s[i] - s[j])  # weight on j
                best = max(best, p * v[j] + (1 - p) * v[i])
    return best


@pytest.mark.parametrize("seed", range(8))
def test_lagrangian_oracle_is_the_linear_programme_optimum(worlds, seed):
    rng = np.random.default_rng(seed)
    value = rng.uniform(0, 1, size=(4, 3))
    spend = rng.uniform(0, 1, size=(4, 3))
    lo, hi = spend.min(axis=1).mean(), spend.max(axis=1).mean()
    limit = lo + rng.uniform(0.1, 0.9) * (hi - lo)
    probs, lam, ok = worlds.lagrangian_oracle(value, spend, limit)
    assert ok and lam >= 0
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
    assert (probs * spend).sum(axis=1).mean() <= limit + 1e-9
    got = (probs * value).sum(axis=1).mean()
    assert got == pytest.approx(brute_force(value, spend, limit), abs=1e-9)


def test_oracles_meet_their_constraint_exactly_when_it_binds(worlds):
    draw = worlds.WORLDS["interactions"].draw(2000, 3)
    eq, ec = draw.eq, draw.ec
    floor = eq[:, 0].mean() - 0.02
    opt = worlds.quality_floor_oracle(eq, ec, floor)
    assert opt.feasible and opt.quality == pytest.approx(floor, abs=1e-9)
    assert opt.cost < ec[:, 0].mean()  # cheaper than the baseline it is measured against
    budget = 0.3 * ec[:, 0].mean()
    opt = worlds.budget_oracle(eq, ec, budget)
    assert opt.feasible and opt.cost == pytest.approx(budget, abs=1e-12)
    assert opt.quality < eq.max(axis=1).mean()


def test_slack_and_impossible_constraints(worlds):
    eq = np.array([[0.9, 0.5], [0.8, 0.6]])
    ec = np.array([[1.0, 0.1], [1.0, 0.1]])
    slack = worlds.budget_oracle(eq, ec, 5.0)  # the budget does not bind: best quality
    assert slack.feasible and slack.dual == 0.0 and slack.quality == pytest.approx(0.85)
    none = worlds.quality_floor_oracle(eq, ec, 0.95)  # no routing reaches the floor
    assert not none.feasible and none.quality == pytest.approx(0.85)


def test_expected_values_match_the_draws(worlds):
    world = worlds.WORLDS["interactions"]
    draw = world.draw(40_000, 0)
    for observed, expected in (
        (draw.quality, draw.eq),
        (draw.cost, draw.ec),
        (np.minimum(draw.latency / worlds.LATENCY_CAP_MS, 1.0), draw.el),
    ):
        err = observed - expected
        se = err.std(axis=0) / np.sqrt(len(err))
        assert (np.abs(err.mean(axis=0)) < 5 * se).all()
    assert (draw.cost < worlds.COST_CAP).all()  # normalising never clips
    stream = draw.stream(world.reward_spec())
    assert (stream.expected >= 0).all() and (stream.expected <= 1).all()
    assert stream.contexts.shape == (40_000, world.n_features)


def test_changes_apply_from_their_round(worlds):
    rounds = 1000
    before = worlds.WORLDS["interactions"].draw(rounds, 5)
    cut = worlds.WORLDS["price-cut"].draw(rounds, 5)
    cut_at = 400  # Change.at = 0.4
    a = worlds.WORLDS["price-cut"].arms.index("mid")
    assert np.array_equal(cut.contexts, before.contexts)
    assert np.allclose(cut.ec[:cut_at, a], before.ec[:cut_at, a])
    assert np.allclose(cut.ec[cut_at:, a], 0.3 * before.ec[cut_at:, a])
    worse = worlds.WORLDS["regression"].draw(rounds, 5)
    s = worlds.WORLDS["regression"].arms.index("small")
    chat = worse.kinds[cut_at:] == 0
    assert np.allclose(worse.eq[cut_at:, s][chat], before.eq[cut_at:, s][chat] - 0.12)
    assert np.allclose(worse.eq[:cut_at, s], before.eq[:cut_at, s])


def test_budget_lies_between_the_cheapest_and_the_baseline_routing(worlds):
    world = worlds.WORLDS["linear"]
    draw = world.draw(5000, 1)
    assert draw.ec.min(axis=1).mean() < world.budget(0.3) < draw.ec[:, 0].mean()
