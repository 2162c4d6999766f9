"""What every bandit algorithm provides.

An algorithm is a frozen set of hyperparameters. Learning happens by adding
``ArmStats`` (see ``policy_store._state``); selection runs on a ``Snapshot``, an
immutable precomputation of a ``PolicyState`` (inverse matrices, θ, Cholesky
factors) so that choosing an arm costs a few small numpy operations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._state import ArmStats, PolicyState


@dataclass(frozen=True)
class Selection:
    """The outcome of one selection.

    ``index`` points into the offered arms (all arms when none were given);
    ``probabilities`` is the policy's distribution over the offered arms (sums
    to 1) and ``propensity`` the probability of the served arm under it.
    """

    index: int
    arm: str
    probabilities: np.ndarray
    propensity: float
    greedy_index: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Immutable, precomputed view of one version of a policy's state.

    Arrays are stacked over arms in the order of ``arms``:
    ``theta`` (K, d), ``a_inv`` (K, d, d), ``chol`` (K, d, d) lower Cholesky factor
    of ``a_inv`` (for sampling), ``n`` (K,).
    """

    arms: tuple[str, ...]
    d: int
    theta: np.ndarray
    a_inv: np.ndarray
    chol: np.ndarray
    n: np.ndarray
    version: int = 0
    updated_at: float | None = None
    index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, state: PolicyState, arms: Sequence[str], d: int, ridge: float) -> Snapshot:
        """Precompute per-arm θ = A⁻¹b and A⁻¹ with A = ridge·I + xx (arms without data: prior)."""
        K = len(arms)
        theta = np.zeros((K, d))
        a_inv = np.empty((K, d, d))
        chol = np.empty((K, d, d))
        n = np.zeros(K)
        eye = np.eye(d)
        for k, arm in enumerate(arms):
            st = state.arms.get(arm) or ArmStats.zeros(d)
            A = ridge * eye + st.xx
            A = 0.5 * (A + A.T)
            L = np.linalg.cholesky(A)
            L_inv = np.linalg.inv(L)
            inv = L_inv.T @ L_inv
            a_inv[k] = inv
            theta[k] = inv @ st.b
            chol[k] = L_inv.T  # chol @ z ~ N(0, A⁻¹)
            n[k] = st.n
        for arr in (theta, a_inv, chol, n):
            arr.setflags(write=False)
        return cls(
            arms=tuple(arms),
            d=d,
            theta=theta,
            a_inv=a_inv,
            chol=chol,
            n=n,
            version=state.version,
            updated_at=state.updated_at,
            index={a: i for i, a in enumerate(arms)},
        )


class Algorithm(ABC):
    """A contextual bandit: hyperparameters only; state is passed in."""

    name: str = "abstract"
    ridge: float = 1.0
    forgetting: float = 1.0

    def snapshot(self, state: PolicyState, arms: Sequence[str], d: int) -> Snapshot:
        return Snapshot.build(state, arms, d, self.ridge)

    @abstractmethod
    def probabilities(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Distribution over the offered arms (indices into ``snap.arms``) for context x."""

    @abstractmethod
    def select(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> Selection:
        """Choose one of the offered arms; report the distribution and the propensity."""

    def greedy(self, snap: Snapshot, x: np.ndarray, offered: Sequence[int] | None = None) -> int:
        """Index (into offered) of the arm with the highest estimated reward θᵀx."""
        idx = np.arange(len(snap.arms)) if offered is None else np.asarray(offered)
        return int(np.argmax(snap.theta[idx] @ x))

    def hyperparameters(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
