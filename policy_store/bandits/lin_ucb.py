"""Disjoint LinUCB with an ε probability floor.

Li, Chu, Langford, Schapire (2010), "A Contextual-Bandit Approach to
Personalized News Article Recommendation", WWW '10 — algorithm 1 (disjoint).

Each arm a keeps A_a = λI + Σxxᵀ and b_a = Σ r·x; θ_a = A_a⁻¹ b_a and
UCB_a(x) = θ_aᵀx + α·sqrt(xᵀA_a⁻¹x). The greedy arm (ties shared equally) gets
probability 1 − ε, and ε is spread uniformly over the K offered arms, so every
arm has a known, non-zero propensity — what off-policy evaluation needs.

>>> import numpy as np
>>> from policy_store._state import PolicyState
>>> algo = LinUCB(alpha=0.5, epsilon=0.1)
>>> snap = algo.snapshot(PolicyState(arms={}), ["a", "b"], d=2)
>>> p = algo.probabilities(snap, np.array([1.0, 0.0]), np.random.default_rng(0))
>>> [round(v, 3) for v in p]
[0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Algorithm, Selection, Snapshot


class LinUCB(Algorithm):
    name = "linucb"

    def __init__(
        self, alpha: float = 0.5, epsilon: float = 0.02, ridge: float = 1.0, forgetting: float = 1.0
    ) -> None:
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.ridge = float(ridge)
        self.forgetting = float(forgetting)

    def ucb(self, snap: Snapshot, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        theta = snap.theta[idx]
        a_inv = snap.a_inv[idx]
        mean = theta @ x
        var = np.einsum("i,kij,j->k", x, a_inv, x)
        return mean + self.alpha * np.sqrt(np.maximum(var, 0.0))

    def probabilities(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> np.ndarray:
        idx = np.arange(len(snap.arms)) if offered is None else np.asarray(offered, dtype=int)
        scores = self.ucb(snap, np.asarray(x, dtype=np.float64), idx)
        K = len(idx)
        best = scores >= scores.max() - 1e-12
        p = np.full(K, self.epsilon / K)
        p[best] += (1.0 - self.epsilon) / best.sum()
        return p

    def select(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> Selection:
        p = self.probabilities(snap, x, rng, offered)
        i = int(rng.choice(len(p), p=p)) if len(p) > 1 else 0
        arm_idx = i if offered is None else int(offered[i])
        return Selection(
            index=i,
            arm=snap.arms[arm_idx],
            probabilities=p,
            propensity=float(p[i]),
            greedy_index=int(np.argmax(p)),
        )
