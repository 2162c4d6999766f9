"""The seeded linear simulator that regret tests and benchmarks rely on."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store.simulator import LinearSimulator


def test_same_seed_same_stream_and_different_seed_differs():
    a = LinearSimulator(4, 6, seed=3).stream(50)
    b = LinearSimulator(4, 6, seed=3).stream(50)
    c = LinearSimulator(4, 6, seed=4).stream(50)
    np.testing.assert_array_equal(a.contexts, b.contexts)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.contexts, c.contexts)


def test_expected_rewards_are_the_mean_of_observed_rewards():
    sim = LinearSimulator(3, 5, seed=1, noise=0.3)
    x = sim.context()
    draws = np.array([[sim.reward(x, k) for k in range(3)] for _ in range(20_000)])
    np.testing.assert_allclose(draws.mean(axis=0), sim.expected_rewards(x), atol=0.01)


def test_clipped_expected_rewards_are_exact():
    sim = LinearSimulator(3, 5, seed=2, noise=0.4, clip=True, spread=0.6)
    x = sim.context()
    draws = np.array([[sim.reward(x, k) for k in range(3)] for _ in range(40_000)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    np.testing.assert_allclose(draws.mean(axis=0), sim.expected_rewards(x), atol=0.006)


def test_regret_of_best_arm_is_zero_and_positive_otherwise():
    stream = LinearSimulator(5, 8, seed=0).stream(200)
    best = stream.expected.argmax(axis=1)
    assert stream.regret(best).max() == 0.0
    worst = stream.expected.argmin(axis=1)
    assert (stream.regret(worst) > 0).all()


def test_correlation_makes_arms_weights_correlated():
    def mean_corr(rho: float) -> float:
        cs = []
        for seed in range(30):
            th = LinearSimulator(2, 40, seed=seed, correlation=rho).theta[:, 1:]
            cs.append(np.corrcoef(th[0], th[1])[0, 1])
        return float(np.mean(cs))

    assert abs(mean_corr(0.0)) < 0.1
    assert mean_corr(0.6) == pytest.approx(0.6, abs=0.1)


def test_shift_redraws_parameters():
    sim = LinearSimulator(3, 4, seed=0)
    before = sim.theta.copy()
    sim.shift()
    assert not np.allclose(before, sim.theta)
    stream = LinearSimulator(3, 4, seed=0).stream(20, shift_at=10)
    assert stream.contexts.shape == (20, 4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_features >= 2"):
        LinearSimulator(3, 1)
    with pytest.raises(ValueError, match="correlation"):
        LinearSimulator(3, 4, correlation=1.5)
