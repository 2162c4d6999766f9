"""Disjoint LinUCB with an ε probability floor.

Li, Chu, Langford, Schapire (2010), "A Contextual-Bandit Approach to
Personalized News Article Recommendation", WWW '10 — algorithm 1 (disjoint).

Each arm a keeps A_a = λI + Σxxᵀ and b_a = Σ r·x; θ_a = A_a⁻¹ b_a and
UCB_a(x) = θ_aᵀx + α·sqrt(xᵀA_a⁻¹x). The greedy arm (ties shared equally) gets
probability 1 − ε, and ε is spread uniformly over the K offered arms, so every
arm has a known, non-zero propensity — what off-policy evaluation needs.

>>> import numpy as np
>>> from policy_store import PolicyState
>>> algo = LinUCB(alpha=0.5, epsilon=0.1)
>>> snap = algo.snapshot(PolicyState(arms={}), ["a", "b"], d=2)
>>> p = algo.probabilities(snap, np.array([1.0, 0.0]), np.random.default_rng(0))
>>> p.round(3).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

from math import sqrt

import numpy as np

from ._base import Algorithm, Snapshot, means_and_variances


class LinUCB(Algorithm):
    """Disjoint LinUCB; ``alpha`` is the width of the confidence bonus, ``epsilon`` the floor."""

    name = "linucb"

    def __init__(
        self,
        alpha: float = 0.3,
        epsilon: float = 0.01,
        ridge: float = 1.0,
        forgetting: float = 1.0,
        pooled: bool = True,
    ) -> None:
        self.alpha = float(alpha)
        super().__init__(epsilon, ridge, forgetting, pooled)

    def ucb(self, snap: Snapshot, x: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """θᵀx + α·sqrt(xᵀA⁻¹x) for the arms ``idx`` (all when None)."""
        return np.array(self._scores(snap, np.asarray(x, dtype=np.float64), idx))

    def _scores(self, snap: Snapshot, x: np.ndarray, idx: np.ndarray | None) -> list[float]:
        means, variances = means_and_variances(snap, x, idx)
        alpha = self.alpha
        return [
            m + alpha * sqrt(v) if v > 0.0 else m for m, v in zip(means, variances, strict=True)
        ]

    def _distribution(
        self, snap: Snapshot, x: np.ndarray, rng: np.random.Generator, idx: np.ndarray | None
    ) -> list[float]:
        """ε/K for every arm, plus 1 − ε shared by the arms with the top score."""
        scores = self._scores(snap, x, idx)
        K = len(scores)
        top = max(scores)
        best = [s >= top - 1e-12 for s in scores]
        floor = self.epsilon / K
        share = (1.0 - self.epsilon) / sum(best)
        return [floor + share if b else floor for b in best]
