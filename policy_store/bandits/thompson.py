"""Linear Thompson sampling over disjoint per-arm posteriors.

Agrawal & Goyal (2013), "Thompson Sampling for Contextual Bandits with Linear
Payoffs", ICML '13. With disjoint arms the sampled score of arm k for context x
is one-dimensional: s_k ~ N(θ_kᵀx, v²·xᵀA_k⁻¹x), independent across arms.

How the probabilities are obtained: P(arm k has the highest sampled score) is
estimated by Monte-Carlo over ``n_samples`` joint draws (vectorised, K numbers
per draw), mixed with the ε floor; the served arm is then drawn from that
distribution. The logged propensity is therefore *exactly* the probability with
which the arm was chosen (the estimate is the policy), not an approximation of
a different procedure.

>>> import numpy as np
>>> from policy_store._state import PolicyState
>>> algo = LinearThompson(scale=0.3, epsilon=0.0, n_samples=1000)
>>> snap = algo.snapshot(PolicyState(arms={}), ["a", "b"], d=1)
>>> p = algo.probabilities(snap, np.array([1.0]), np.random.default_rng(0))
>>> bool(abs(p[0] - 0.5) < 0.06)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import (
    Algorithm,
    Selection,
    Snapshot,
    draw,
    make_selection,
    means_and_variances,
    offered_index,
)


class LinearThompson(Algorithm):
    """Disjoint linear TS; ``scale`` multiplies the posterior standard deviation."""

    name = "ts"

    def __init__(
        self,
        scale: float = 0.3,
        epsilon: float = 0.01,
        ridge: float = 1.0,
        forgetting: float = 1.0,
        n_samples: int = 256,
        pooled: bool = True,
    ) -> None:
        self.scale = float(scale)
        super().__init__(epsilon, ridge, forgetting, pooled)
        self.n_samples = int(n_samples)

    def probabilities(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> np.ndarray:
        idx = offered_index(snap, offered)
        x = np.asarray(x, dtype=np.float64)
        m, v = means_and_variances(snap, x, idx)
        mean = np.array(m)
        var = np.maximum(v, 0.0)
        sd = self.scale * np.sqrt(var)
        K = mean.shape[0]
        draws = mean + sd * rng.standard_normal((self.n_samples, K))
        wins = np.bincount(draws.argmax(axis=1), minlength=K) / self.n_samples
        return (1.0 - self.epsilon) * wins + self.epsilon / K

    def choose(
        self, snap: Snapshot, x: np.ndarray, rng: np.random.Generator
    ) -> tuple[int, float, np.ndarray]:
        p = self.probabilities(snap, x, rng)
        i = draw(p, rng.random()) if p.shape[0] > 1 else 0
        return i, float(p[i]), p

    def select(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> Selection:
        p = self.probabilities(snap, x, rng, offered)
        i = draw(p, rng.random()) if p.shape[0] > 1 else 0
        return make_selection(snap, p, i, offered)
