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
>>> from policy_store import PolicyState
>>> algo = LinearThompson(scale=0.3, epsilon=0.0, n_samples=1000)
>>> snap = algo.snapshot(PolicyState(arms={}), ["a", "b"], d=1)
>>> p = algo.probabilities(snap, np.array([1.0]), np.random.default_rng(0))
>>> bool(abs(p[0] - 0.5) < 0.06)
True
"""

from __future__ import annotations

import numpy as np

from ._base import Algorithm, Snapshot, means_and_variances


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

    def _distribution(
        self, snap: Snapshot, x: np.ndarray, rng: np.random.Generator, idx: np.ndarray | None
    ) -> np.ndarray:
        """Monte-Carlo win probabilities over ``n_samples`` joint draws, with the ε floor."""
        m, v = means_and_variances(snap, x, idx)
        mean = np.array(m)
        var = np.maximum(v, 0.0)
        sd = self.scale * np.sqrt(var)
        K = mean.shape[0]
        draws = mean + sd * rng.standard_normal((self.n_samples, K))
        wins = np.bincount(draws.argmax(axis=1), minlength=K) / self.n_samples
        return (1.0 - self.epsilon) * wins + self.epsilon / K
