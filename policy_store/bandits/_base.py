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
        for k, arm in enumerate(arms):
            st = state.arms.get(arm) or ArmStats.zeros(d)
            theta[k], a_inv[k], chol[k], n[k] = _arm_arrays(st, d, ridge)
        return cls._frozen(tuple(arms), d, theta, a_inv, chol, n, state.version, state.updated_at)

    @classmethod
    def _frozen(cls, arms, d, theta, a_inv, chol, n, version, updated_at) -> Snapshot:
        for arr in (theta, a_inv, chol, n):
            arr.setflags(write=False)
        return cls(
            arms=arms,
            d=d,
            theta=theta,
            a_inv=a_inv,
            chol=chol,
            n=n,
            version=version,
            updated_at=updated_at,
            index={a: i for i, a in enumerate(arms)},
        )

    def with_arm(self, arm: str, stats: ArmStats, ridge: float) -> Snapshot:
        """A new snapshot where ``arm`` (added at the end when new) has ``stats``.

        Only that arm's matrices are recomputed, which keeps in-process learning
        (``ContextualBandit.update``) at one d×d factorisation per observation.
        """
        k = self.index.get(arm)
        arrays = [self.theta, self.a_inv, self.chol, self.n]
        arms = self.arms
        if k is None:
            k = len(self.arms)
            arms = (*self.arms, arm)
            arrays = [np.concatenate([a, np.zeros((1, *a.shape[1:]))]) for a in arrays]
        else:
            arrays = [a.copy() for a in arrays]
        theta, a_inv, chol, n = arrays
        theta[k], a_inv[k], chol[k], n[k] = _arm_arrays(stats, self.d, ridge)
        return self._frozen(arms, self.d, theta, a_inv, chol, n, self.version, self.updated_at)


def _arm_arrays(
    st: ArmStats, d: int, ridge: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """θ, A⁻¹ and the factor C with C·z ~ N(0, A⁻¹) for one arm."""
    A = ridge * np.eye(d) + st.xx
    A = 0.5 * (A + A.T)
    L = np.linalg.cholesky(A)
    L_inv = np.linalg.inv(L)
    inv = L_inv.T @ L_inv
    return inv @ st.b, inv, L_inv.T, st.n


def draw(p: np.ndarray | list[float], u: float) -> int:
    """Index i with cumulative probability just above ``u`` ∈ [0, 1): sampling from ``p``.

    A plain loop over K floats is several times faster than ``Generator.choice``
    for the handful of arms a policy has.

    >>> draw(np.array([0.2, 0.5, 0.3]), 0.69)
    1
    """
    acc = 0.0
    probs = p.tolist() if isinstance(p, np.ndarray) else p
    for i, pi in enumerate(probs):
        acc += pi
        if u < acc:
            return i
    return len(probs) - 1  # u within rounding of 1.0


def check_features(snap: Snapshot, x: np.ndarray) -> None:
    """Refuse a context of the wrong size with a message that says what to fix."""
    if x.shape != (snap.d,):
        raise ValueError(
            f"feature vector has shape {x.shape}, the policy expects ({snap.d},); "
            "pass exactly n_features numbers"
        )


def offered_index(snap: Snapshot, offered: Sequence[int] | None) -> np.ndarray | None:
    """Offered arms as an index array, or None for all arms (the fast path)."""
    if offered is None:
        return None
    idx = np.asarray(offered, dtype=np.intp)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError("offered must be a non-empty sequence of arm indices")
    if idx.min() < 0 or idx.max() >= len(snap.arms):
        raise ValueError(f"offered arm indices {idx.tolist()} out of range 0..{len(snap.arms) - 1}")
    return idx


def make_selection(
    snap: Snapshot, p: np.ndarray, i: int, offered: Sequence[int] | None
) -> Selection:
    arm_idx = i if offered is None else int(offered[i])
    p.setflags(write=False)
    return Selection(
        index=i,
        arm=snap.arms[arm_idx],
        probabilities=p,
        propensity=float(p[i]),
        greedy_index=int(p.argmax()),
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
