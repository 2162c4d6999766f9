"""The linear algebra of a ``Snapshot``: batched inverses, the pooled prior mean, the
per-arm component sums stacked over arms, the Gram matrix θ is fitted with under an
objective, and θ per component.

Pure numpy; ``Snapshot.build`` / ``with_arm`` / ``_frozen`` (``_base``) are the only users.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .._components import COMPONENTS, N_COMPONENTS
from .._state import ArmStats


@lru_cache(maxsize=64)
def ridge_identity(d: int, ridge: float) -> np.ndarray:
    """ridge·I (d × d), read-only and shared: snapshots add it to Gram matrices often."""
    eye = ridge * np.eye(d)
    eye.setflags(write=False)
    return eye


def inverses(xx: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """A⁻¹ and C with C·Cᵀ = A⁻¹ for a stack of A = ridge·I + xx (Cholesky, batched)."""
    A = ridge_identity(xx.shape[-1], ridge) + xx
    A = 0.5 * (A + A.swapaxes(-1, -2))
    L = np.linalg.cholesky(A)
    L_inv = np.linalg.inv(L)
    C = L_inv.swapaxes(-1, -2)
    return C @ L_inv, C


#: the ``Snapshot`` fields of ``ComponentArrays.arrays()``, in that order
SNAPSHOT_FIELDS = ("comp_y", "comp_s", "comp_s2", "comp_xx", "comp_n", "legacy")


class ComponentArrays:
    """Per-arm component sums stacked over arms (mutable while a snapshot is being built).

    ``xx``/``n`` are the Gram matrix and weight of each arm's component observations (the
    arm's own for a non-legacy arm); ``legacy`` marks arms with data the sums do not cover.
    """

    def __init__(self, y, s, s2, xx, n, legacy) -> None:
        self.y, self.s, self.s2, self.xx, self.n, self.legacy = y, s, s2, xx, n, legacy

    @classmethod
    def zeros(cls, K: int, d: int) -> ComponentArrays:
        C = N_COMPONENTS
        return cls(
            np.zeros((K, C, d)),
            np.zeros((K, C)),
            np.zeros((K, C)),
            np.zeros((K, d, d)),
            np.zeros(K),
            np.zeros(K, dtype=bool),
        )

    @classmethod
    def before_components(cls, n: np.ndarray, d: int) -> ComponentArrays:
        """Zero sums for arms whose statistics (weights ``n``) have none yet: every arm with
        data is a legacy arm."""
        comp = cls.zeros(len(n), d)
        comp.legacy[:] = n > 0
        return comp

    def arrays(self) -> list[np.ndarray]:
        return [self.y, self.s, self.s2, self.xx, self.n, self.legacy]

    def fields(self) -> dict[str, np.ndarray]:
        """The arrays under the names ``Snapshot`` gives them."""
        return dict(zip(SNAPSHOT_FIELDS, self.arrays(), strict=True))

    def copy(self, grow: bool = False) -> ComponentArrays:
        """A writable copy, with one more (zero) arm when ``grow``."""
        if grow:
            return ComponentArrays(
                *(np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)]) for a in self.arrays())
            )
        return ComponentArrays(*(a.copy() for a in self.arrays()))

    def put(self, k: int, st: ArmStats) -> None:
        """Row ``k`` from one arm's statistics."""
        c = st.components
        if c is None:
            self.y[k], self.s[k], self.s2[k], self.xx[k], self.n[k] = 0.0, 0.0, 0.0, 0.0, 0.0
            self.legacy[k] = st.n > 0
        elif c.xx is None:
            self.y[k], self.s[k], self.s2[k], self.xx[k], self.n[k] = c.y, c.s, c.s2, st.xx, st.n
            self.legacy[k] = False
        else:
            self.y[k], self.s[k], self.s2[k], self.xx[k], self.n[k] = c.y, c.s, c.s2, c.xx, c.n
            self.legacy[k] = True


def weight_vector(weights: np.ndarray | Sequence[float] | None) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.array(weights, dtype=np.float64, copy=True)
    if w.shape != (N_COMPONENTS,) or not np.isfinite(w).all():
        raise ValueError(
            f"weights must be {N_COMPONENTS} finite numbers, one per component "
            f"{COMPONENTS}; got shape {w.shape}"
        )
    return w


def refit(
    a_inv: np.ndarray,
    chol: np.ndarray,
    xx: np.ndarray,
    comp: ComponentArrays | None,
    weights: np.ndarray | None,
    legacy_reward: bool,
    ridge: float,
    rows: list[int],
) -> None:
    """Recompute, in place, the rows ``rows`` of ``a_inv`` and ``chol`` from their fitted Gram."""
    sel = slice(rows[0], rows[0] + 1) if len(rows) == 1 else rows  # a view for one row
    a_inv[sel], chol[sel] = inverses(fitted_gram(xx, comp, weights, legacy_reward, sel), ridge)


def regram_rows(
    comp: ComponentArrays | None,
    legacy_reward: bool,
    before: np.ndarray | None,
    after: np.ndarray | None,
    exclude: int = -1,
) -> list[int]:
    """Arms whose fitted Gram changes when the weights go from ``before`` to ``after``
    (besides ``exclude``): legacy arms, when weights appear or vanish under
    ``legacy_reward=False`` (their A comes from their component observations with weights,
    from all of them without)."""
    if comp is None or legacy_reward or (before is None) == (after is None):
        return []
    return [j for j in np.flatnonzero(comp.legacy).tolist() if j != exclude]


def fitted_gram(
    xx: np.ndarray,
    comp: ComponentArrays | None,
    weights: np.ndarray | None,
    legacy_reward: bool,
    sel: slice | list[int] = slice(None),
) -> np.ndarray:
    """The Gram matrix θ is fitted with, for the arms ``sel`` (all by default): the arm's own,
    or for a legacy arm whose θ comes from its component sums the Gram of its component
    observations."""
    if weights is None or legacy_reward or comp is None:
        return xx[sel]
    legacy = comp.legacy[sel]
    if not legacy.any():
        return xx[sel]
    return np.where(legacy[:, None, None], comp.xx[sel], xx[sel])


def pooled_mean(gram: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """θ̄ = (λI + Σ gram)⁻¹ Σ b; ``b`` may have extra trailing columns-as-rows (C, d)."""
    A = ridge_identity(gram.shape[-1], ridge) + gram.sum(axis=0)
    return np.linalg.solve(0.5 * (A + A.T), b.sum(axis=0).T).T


def component_theta(
    comp: ComponentArrays,
    a_inv: np.ndarray,
    ridge: float,
    pooled: bool,
    legacy_on_components: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """θ per arm and component (K, C, d) from the component sums (pooled like θ), and the
    pooled prior mean per component (C, d; zeros when not pooled).

    ``a_inv`` are the snapshot's inverses; they are those of the component Gram for every
    arm except legacy arms whose θ keeps the reward sums (``legacy_on_components`` False),
    which get their own inverse here."""
    K, C, d = comp.y.shape
    if not comp.n.any():  # no component observations anywhere: nothing to estimate
        return np.zeros((K, C, d)), np.zeros((C, d))
    ac_inv = a_inv
    if not legacy_on_components and comp.legacy.any():
        # legacy arms whose A⁻¹ above is not that of their component Gram
        ac_inv = a_inv.copy()
        ac_inv[comp.legacy] = inverses(comp.xx[comp.legacy], ridge)[0]
    prior = pooled_mean(comp.xx, comp.y, ridge) if pooled else np.zeros((C, d))
    return (comp.y + ridge * prior) @ ac_inv.swapaxes(1, 2), prior


def linear_in_components(
    comp: ComponentArrays | None, weights: np.ndarray | None, legacy_reward: bool
) -> bool:
    """Whether θ under ``weights`` is Σ_c weights_c·θ_c of the per-component θ: every arm's θ
    comes from its component sums, fitted with the Gram the component θ use. False without
    weights (θ from ``b``) and for legacy arms that keep their reward sums."""
    if weights is None or comp is None:
        return False
    return not legacy_reward or not comp.legacy.any()


def objective_theta(
    stats: tuple[np.ndarray, np.ndarray, np.ndarray],
    comp: ComponentArrays | None,
    weights: np.ndarray | None,
    legacy_reward: bool,
    ridge: float,
    pooled: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """θ (K, d) and the pooled prior mean θ̄ (d,) from ``stats`` = (xx, b, a_inv): from the
    reward sums ``b`` without ``weights``, else from b_a = Σ_c weights_c·y_{a,c} (a legacy arm
    keeps ``b`` when ``legacy_reward``); θ_a = A_a⁻¹ (b_a + λ·θ̄), θ̄ = (λI + Σ gram)⁻¹ Σ b."""
    xx, b, a_inv = stats
    gram, b_used = xx, b
    if weights is not None:
        gram = fitted_gram(xx, comp, weights, legacy_reward)
        b_used = weights @ comp.y
        if legacy_reward and comp.legacy.any():
            b_used[comp.legacy] = b[comp.legacy]
    d = xx.shape[-1]
    prior = pooled_mean(gram, b_used, ridge) if pooled and len(xx) > 0 else np.zeros(d)
    return np.einsum("kij,kj->ki", a_inv, b_used + ridge * prior), prior
