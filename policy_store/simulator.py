"""A seeded linear contextual-bandit simulator (pure numpy), for tests and benchmarks.

Each round draws a context ``x`` and every arm ``a`` has expected reward
``θ_aᵀx``; the observed reward adds Gaussian noise. Because the expected
rewards are known, regret can be computed exactly:
``regret = max_a E[r | x, a] − E[r | x, served]``.

Contexts: ``x = [1, z]`` (an intercept, then ``d − 1`` features) with
``z ~ N(0, I) / sqrt(d − 1)`` so that ``‖z‖ ≈ 1`` whatever ``d``. Parameters:
the intercept of each arm is drawn from U(``base_low``, ``base_high``) — the arm's
average reward — and its feature weights from N(0, ``spread²``), so that the best
arm depends on the context by about ``spread``. With ``correlation`` ρ > 0 the
arms' weight vectors share a common part (sqrt(ρ)·w + sqrt(1 − ρ)·w_a, so any two
arms' weights have correlation ρ and the same marginal spread): a context that is
hard for one provider tends to be hard for all, as with LLM providers (long
prompts cost more everywhere). ρ = 0: independent arms.
With the defaults, expected rewards lie mostly in [0, 1] like the project's
reward (quality / cost / latency).

Rewards are **not clipped** by default, so the linear model is exactly right and
``expected_rewards`` is exact. With ``clip=True`` observed rewards are clipped to
[0, 1] (as real rewards are) and ``expected_rewards`` returns the exact mean of
the clipped Gaussian, so regret stays exact though the model is then slightly
misspecified.

``shift()`` redraws the arms' parameters (an abrupt change, e.g. a provider
got worse); ``drift`` > 0 adds a Gaussian random walk to θ every round.

>>> sim = LinearSimulator(n_arms=3, n_features=4, seed=1)
>>> x = sim.context()
>>> x.shape, float(x[0])
((4,), 1.0)
>>> r = sim.expected_rewards(x)
>>> sim.regret(x, int(r.argmax()))
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LinearSimulator", "Stream"]


@dataclass(frozen=True)
class Stream:
    """T pre-drawn rounds: ``contexts`` (T, d), observed ``rewards`` (T, K) of every arm
    (only the served arm's is revealed to a learner) and ``expected`` rewards (T, K)."""

    contexts: np.ndarray
    rewards: np.ndarray
    expected: np.ndarray

    def __len__(self) -> int:
        return int(self.contexts.shape[0])

    def regret(self, arms: np.ndarray) -> np.ndarray:
        """Per-round regret of the served ``arms`` (T,)."""
        arms = np.asarray(arms, dtype=int)
        rows = np.arange(len(arms))
        return self.expected[rows].max(axis=1) - self.expected[rows, arms]


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in z.ravel()])).reshape(
        z.shape
    )


def _norm_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


class LinearSimulator:
    """K arms, d features (first one is the intercept), reward = θ_aᵀx + N(0, noise²)."""

    def __init__(
        self,
        n_arms: int = 5,
        n_features: int = 12,
        *,
        noise: float = 0.1,
        spread: float = 0.2,
        correlation: float = 0.0,
        base_low: float = 0.3,
        base_high: float = 0.7,
        clip: bool = False,
        drift: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        if n_arms < 1 or n_features < 2:
            raise ValueError("need n_arms >= 1 and n_features >= 2 (the first is the intercept)")
        if noise < 0 or spread < 0 or drift < 0:
            raise ValueError("noise, spread and drift must be >= 0")
        if not 0.0 <= correlation <= 1.0:
            raise ValueError("correlation must be in [0, 1]")
        self.n_arms = int(n_arms)
        self.n_features = int(n_features)
        self.noise = float(noise)
        self.spread = float(spread)
        self.correlation = float(correlation)
        self.base_low = float(base_low)
        self.base_high = float(base_high)
        self.clip = bool(clip)
        self.drift = float(drift)
        self.rng = np.random.default_rng(seed)
        self.theta = self._draw_theta()

    def _draw_theta(self) -> np.ndarray:
        K, d = self.n_arms, self.n_features
        base = self.rng.uniform(self.base_low, self.base_high, size=(K, 1))
        own = self.rng.normal(0.0, self.spread, size=(K, d - 1))
        common = self.rng.normal(0.0, self.spread, size=(1, d - 1))
        rho = self.correlation
        weights = math.sqrt(rho) * common + math.sqrt(1.0 - rho) * own
        return np.hstack([base, weights])

    def context(self) -> np.ndarray:
        """A fresh context vector ``[1, z]``."""
        z = self.rng.standard_normal(self.n_features - 1) / math.sqrt(self.n_features - 1)
        return np.concatenate(([1.0], z))

    def _means(self, x: np.ndarray) -> np.ndarray:
        return self.theta @ np.asarray(x, dtype=np.float64)

    def expected_rewards(self, x: np.ndarray) -> np.ndarray:
        """Exact expected reward of every arm for context ``x`` (shape (K,))."""
        mu = self._means(x)
        if not self.clip or self.noise == 0.0:
            return np.clip(mu, 0.0, 1.0) if self.clip else mu
        s = self.noise
        a, b = (0.0 - mu) / s, (1.0 - mu) / s
        ca, cb = _norm_cdf(a), _norm_cdf(b)
        # E[clip(Y, 0, 1)] for Y ~ N(mu, s²): mass above 1 counts 1, below 0 counts 0.
        inside = mu * (cb - ca) + s * (_norm_pdf(a) - _norm_pdf(b))
        return inside + (1.0 - cb)

    def reward(self, x: np.ndarray, arm: int) -> float:
        """Observed (noisy) reward of ``arm`` for context ``x``; advances drift if any."""
        r = float(self.theta[arm] @ x) + self.noise * float(self.rng.standard_normal())
        if self.clip:
            r = min(max(r, 0.0), 1.0)
        if self.drift > 0.0:
            self.theta = self.theta + self.rng.normal(0.0, self.drift, size=self.theta.shape)
        return r

    def regret(self, x: np.ndarray, arm: int) -> float:
        """Expected reward lost by serving ``arm`` instead of the best arm for ``x``."""
        r = self.expected_rewards(x)
        return float(r.max() - r[arm])

    def stream(self, rounds: int, *, shift_at: int | None = None) -> Stream:
        """Draw ``rounds`` rounds at once, so several learners can face the same data.

        With ``shift_at`` the parameters are redrawn (``shift()``) before that round.
        """
        K, d = self.n_arms, self.n_features
        X = np.empty((rounds, d))
        R = np.empty((rounds, K))
        M = np.empty((rounds, K))
        for t in range(rounds):
            if shift_at is not None and t == shift_at:
                self.shift()
            x = self.context()
            X[t] = x
            M[t] = self.expected_rewards(x)
            r = self._means(x) + self.noise * self.rng.standard_normal(K)
            R[t] = np.clip(r, 0.0, 1.0) if self.clip else r
            if self.drift > 0.0:
                self.theta = self.theta + self.rng.normal(0.0, self.drift, size=self.theta.shape)
        return Stream(X, R, M)

    def shift(self) -> None:
        """Redraw every arm's parameters (an abrupt change of the world)."""
        self.theta = self._draw_theta()
