"""Off-policy estimators on synthetic logs whose true target value is known."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import AlgorithmConfig, ArmStats, PolicyState, make_algorithm
from policy_store.evaluation import (
    LoggedData,
    dr,
    evaluate,
    ips,
    policy_probabilities,
    reward_model,
    snips,
)

K, D = 3, 4


class World:
    """Contexts x = (1, z), z ~ N(0, I); arm a's mean reward is a clipped linear score."""

    def __init__(self, seed: int = 123) -> None:
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(0, 0.25, (K, D))
        self.theta[:, 0] = [0.5, 0.45, 0.55]
        self.logging_w = rng.normal(0, 1.0, (K, D))
        self.target_w = self.theta * 5.0  # a target that prefers the good arms

    def contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        X = rng.normal(0, 1, (n, D))
        X[:, 0] = 1.0
        return X

    def means(self, X: np.ndarray) -> np.ndarray:
        return np.clip(X @ self.theta.T, 0.0, 1.0)

    @staticmethod
    def softmax(S: np.ndarray, floor: float) -> np.ndarray:
        e = np.exp(S - S.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return (1 - floor) * p + floor / K

    def logging(self, X: np.ndarray) -> np.ndarray:
        return self.softmax(X @ self.logging_w.T, 0.15)

    def target(self, X: np.ndarray) -> np.ndarray:
        return self.softmax(X @ self.target_w.T, 0.05)

    def logs(self, n: int, rng: np.random.Generator) -> tuple[LoggedData, np.ndarray]:
        X = self.contexts(n, rng)
        mu = self.logging(X)
        a = (mu.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        mean = self.means(X)[np.arange(n), a]
        r = np.clip(mean + rng.normal(0, 0.2, n), 0.0, 1.0)  # noisy rewards in [0, 1]
        data = LoggedData(X, a, r, mu[np.arange(n), a], ("a", "b", "c"))
        return data, self.target(X)

    def true_value(self, n: int = 400_000) -> float:
        rng = np.random.default_rng(999)
        X = self.contexts(n, rng)
        # E[clip(mean + noise)] differs from the mean near the bounds: integrate it numerically
        noise = rng.normal(0, 0.2, (n, 1))
        rewards = np.clip(self.means(X) + noise, 0.0, 1.0)
        return float((self.target(X) * rewards).sum(axis=1).mean())


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def truth(world: World) -> float:
    return world.true_value()


def test_intervals_cover_the_true_value_at_the_stated_rate(world, truth):
    reps, n = 200, 2000
    hits = {"ips": 0, "snips": 0, "dr": 0}
    sq_err = {"ips": 0.0, "snips": 0.0, "dr": 0.0}
    for seed in range(reps):
        data, target = world.logs(n, np.random.default_rng(seed))
        res = evaluate(data, target, rng=seed)
        for name in hits:
            iv = getattr(res, name)
            hits[name] += iv.contains(truth)
            sq_err[name] += (iv.estimate - truth) ** 2
    coverage = {k: v / reps for k, v in hits.items()}
    # nominal 95%; allow for the normal approximation and 200 replications (sd ≈ 1.5 points)
    for name, c in coverage.items():
        assert 0.90 <= c <= 0.995, f"{name} coverage {c:.3f}"
    rmse = {k: (v / reps) ** 0.5 for k, v in sq_err.items()}
    assert rmse["snips"] < rmse["ips"], rmse
    assert rmse["dr"] < rmse["ips"], rmse
    assert rmse["dr"] < 0.8 * rmse["ips"], rmse  # the reward model removes much of the noise


def test_logging_policy_evaluated_on_itself_gives_the_logged_mean(world):
    data, _ = world.logs(500, np.random.default_rng(1))
    target = world.logging(data.X)
    # w = 1 everywhere: IPS and SNIPS are exactly the logged mean
    assert ips(data, target).estimate == pytest.approx(data.rewards.mean())
    assert snips(data, target).estimate == pytest.approx(data.rewards.mean())
    res = evaluate(data, target)
    assert res.ess == pytest.approx(data.n)


def test_deterministic_target_known_answer():
    # two arms, uniform logging; the target always picks arm 1
    X = np.ones((4, 1))
    data = LoggedData(
        X, np.array([0, 1, 0, 1]), np.array([0.0, 1.0, 0.0, 0.5]), np.full(4, 0.5), ("x", "y")
    )
    target = np.tile([0.0, 1.0], (4, 1))
    assert ips(data, target).estimate == pytest.approx((2 * 1.0 + 2 * 0.5) / 4)
    assert snips(data, target).estimate == pytest.approx(0.75)
    # a perfect reward model (no cross-fitting: arm means 0 and 0.75) makes DR = 0.75 exactly
    q = reward_model(data, folds=1)
    assert q[:, 1] == pytest.approx(0.75)
    assert dr(data, target, q).estimate == pytest.approx(0.75)


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="propensities"):
        LoggedData(np.ones((2, 1)), np.array([0, 1]), np.zeros(2), np.array([0.5, 0.0]), ("a", "b"))
    data = LoggedData(np.ones((2, 1)), np.array([0, 1]), np.zeros(2), np.full(2, 0.5), ("a", "b"))
    with pytest.raises(ValueError, match="shape"):
        ips(data, np.ones((2, 3)))
    with pytest.raises(ValueError, match="not among"):
        LoggedData.from_records([[1.0]], ["z"], [1.0], [1.0], arms=["a"])


def test_policy_probabilities_from_a_learned_snapshot():
    rng = np.random.default_rng(0)
    d = 2
    # arm "good" has learnt reward ≈ 1, arm "bad" ≈ 0 on the intercept feature
    X = np.tile([1.0, 0.0], (200, 1))
    state = PolicyState(
        arms={
            "good": ArmStats.of(X.T @ X, X.T @ np.ones(200), 200),
            "bad": ArmStats.of(X.T @ X, X.T @ np.zeros(200), 200),
        }
    )
    algo = make_algorithm(AlgorithmConfig(name="linucb", epsilon=0.1))
    snap = algo.snapshot(state, ["good", "bad"], d)
    ctx = rng.normal(size=(5, d))
    ctx[:, 0] = 1.0
    probs = policy_probabilities(algo, snap, ctx, ["bad", "good", "unknown"])
    assert probs.shape == (5, 3)
    assert probs.sum(axis=1) == pytest.approx(np.ones(5))
    assert (probs[:, 1] > 0.9).all() and (probs[:, 2] == 0).all()
