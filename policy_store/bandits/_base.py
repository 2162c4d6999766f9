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
from ._component_arrays import (
    ComponentArrays,
    component_theta,
    fitted_gram,
    inverses,
    linear_in_components,
    objective_theta,
    refit,
    regram_rows,
    weight_vector,
)
from ._selection import draw, offered_index
from ._selection import means_and_variances as means_and_variances  # lin_ucb, thompson


class _Keep:
    """Marker default of ``Snapshot.with_arm``'s ``weights``: keep the snapshot's."""


KEEP = _Keep()


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
    #: the most probable of the offered arms (the first of equals)
    greedy_index: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Immutable, precomputed view of one version of a policy's state.

    Arrays are stacked over arms in the order of ``arms``:
    ``theta`` (K, d) posterior means, ``a_inv`` (K, d, d), ``chol`` (K, d, d) a
    factor C of A⁻¹ (C·z ~ N(0, A⁻¹) for sampling), ``n`` (K,).

    **Pooled prior** (``pooled=True``, the default): every arm's ridge prior is
    centred on the model fitted to all arms' data together instead of on 0:

        θ̄ = (λI + Σ_a xx_a)⁻¹ Σ_a b_a          θ_a = A_a⁻¹ (b_a + λ·θ̄)

    A_a = λI + xx_a is unchanged, so the exploration widths are those of plain
    disjoint LinUCB / TS; only the means move. An arm with little data starts
    from what the other arms say (≈ the average reward for that context)
    instead of from reward 0, which removes the pessimistic bias that makes a
    zero prior under-explore. With data, each arm's own evidence dominates.
    ``pooled=False`` gives the textbook θ_a = A_a⁻¹ b_a.

    **Objective weights** (``weights``, (C,) over ``COMPONENTS``; None = the reward sums
    ``b``): θ is computed exactly as above from b_a = Σ_c weights_c·y_{a,c} (the arm's
    component sums), so the selection path is the same and θ, ``stacked`` hold the
    objective's estimates. A legacy arm (data from before components) keeps its reward
    sums ``b`` when ``legacy_reward`` (right for the weighted objective: today's θ);
    otherwise (constrained objectives) its θ, A⁻¹ and factor come from its component
    observations only, A = λI + ``comp_xx``. ``components`` (K, C, d) is θ per component
    (pooled like θ), for monitoring and for the objective's own estimates; ``comp_s``,
    ``comp_s2`` (K, C) and ``comp_n`` (K,) are the scalar sums Σw·v, Σw·v², Σw of each
    arm's component observations, ``dual`` the policy's Lagrange multiplier λ. θ is linear in
    the weights, so when every arm's θ comes from its component sums it is computed as
    Σ_c weights_c·θ_c (one pooled solve for all components); ``reweighted`` and
    ``with_arm(..., weights=)`` change the weights (a new λ) without refactorising.
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
    #: θ rows then A⁻¹ rows, (K + K·d, d): one matrix-vector product gives every
    #: arm's θᵀx and A⁻¹x, the fast path of selection over all arms.
    stacked: np.ndarray | None = None
    #: the statistics the snapshot was built from (K, d, d) and (K, d), for ``with_arm``
    xx: np.ndarray | None = None
    b: np.ndarray | None = None
    #: the pooled prior mean θ̄ (zeros when not pooled)
    prior: np.ndarray | None = None
    ridge: float = 1.0
    pooled: bool = True
    #: the objective's component weights (C,), None when θ comes from ``b``
    weights: np.ndarray | None = None
    legacy_reward: bool = True
    #: θ per component (K, C, d) and their pooled prior means (C, d); these and the
    #: component sums below are None when no arm has component sums and no weights were given
    components: np.ndarray | None = None
    component_prior: np.ndarray | None = None
    #: component sums: y (K, C, d), s and s2 (K, C), the Gram (K, d, d) and weight (K,)
    #: of each arm's component observations, and which arms are legacy (K,)
    comp_y: np.ndarray | None = None
    comp_s: np.ndarray | None = None
    comp_s2: np.ndarray | None = None
    comp_xx: np.ndarray | None = None
    comp_n: np.ndarray | None = None
    legacy: np.ndarray | None = None
    dual: float = 0.0

    @classmethod
    def build(
        cls,
        state: PolicyState,
        arms: Sequence[str],
        d: int,
        ridge: float,
        *,
        pooled: bool = True,
        weights: np.ndarray | Sequence[float] | None = None,
        legacy_reward: bool = True,
    ) -> Snapshot:
        """Precompute θ and A⁻¹ for every arm, A = ridge·I + xx (arms without data: prior);
        with ``weights``, θ of the objective they weigh the components with (see above)."""
        K = len(arms)
        xx = np.zeros((K, d, d))
        b = np.zeros((K, d))
        n = np.zeros(K)
        found = [state.arms.get(arm) for arm in arms]
        comp = None  # no component sums anywhere and no weights: nothing to stack
        if weights is not None or any(st is not None and st.components for st in found):
            comp = ComponentArrays.zeros(K, d)
        for k, st in enumerate(found):
            if st is not None:
                xx[k], b[k], n[k] = st.xx, st.b, st.n
                if comp is not None:
                    comp.put(k, st)
        w = weight_vector(weights)
        a_inv, chol = inverses(fitted_gram(xx, comp, w, legacy_reward), ridge)
        return cls._frozen(
            tuple(arms),
            d,
            (xx, b, a_inv, chol, n),
            comp,
            ridge,
            pooled,
            (w, legacy_reward, state.dual, state.version, state.updated_at),
        )

    @classmethod
    def _frozen(
        cls, arms, d, stats, comp, ridge, pooled, meta, index=None, per_component=None
    ) -> Snapshot:
        """The snapshot of stacked statistics whose A⁻¹ and factors are already computed:
        θ per component (unless ``per_component`` gives them and their prior), then the
        objective's θ (Σ_c w_c·θ_c when that is exact, which saves a second pooled solve),
        ``stacked``, all arrays made read-only."""
        xx, b, a_inv, chol, n = stats
        weights, legacy_reward, dual, version, updated_at = meta
        components = comp_prior = None
        if per_component is not None:
            components, comp_prior = per_component
        elif comp is not None:
            on_components = weights is not None and not legacy_reward
            components, comp_prior = component_theta(comp, a_inv, ridge, pooled, on_components)
        if linear_in_components(comp, weights, legacy_reward):
            theta, prior = weights @ components, weights @ comp_prior
        else:
            sums = (xx, b, a_inv)
            theta, prior = objective_theta(sums, comp, weights, legacy_reward, ridge, pooled)
        stacked = np.concatenate([theta, a_inv.reshape(-1, d)])
        frozen = [theta, a_inv, chol, n, stacked, xx, b, prior]
        if comp is not None:
            frozen += [components, comp_prior, *comp.arrays()]
        if weights is not None:
            frozen.append(weights)
        for arr in frozen:
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
            index={a: i for i, a in enumerate(arms)} if index is None else index,
            stacked=stacked,
            xx=xx,
            b=b,
            prior=prior,
            ridge=float(ridge),
            pooled=pooled,
            weights=weights,
            legacy_reward=legacy_reward,
            components=components,
            component_prior=comp_prior,
            dual=float(dual),
            **({} if comp is None else comp.fields()),
        )

    def with_arm(
        self,
        arm: str,
        stats: ArmStats,
        ridge: float | None = None,
        *,
        weights: np.ndarray | Sequence[float] | None | _Keep = KEEP,
        dual: float | None = None,
        version: int | None = None,
        updated_at: float | None = None,
    ) -> Snapshot:
        """A new snapshot where ``arm`` (added at the end when new) has ``stats``.

        Only that arm's matrices are refactorised (plus the pooled prior), which
        keeps in-process learning (``ContextualBandit.update``) cheap. Component sums are
        kept; ``weights`` (the objective's, e.g. at a new λ; see ``reweighted``), ``dual``,
        ``version`` and ``updated_at`` are the snapshot's unless given.
        """
        if self.xx is None or self.b is None:
            raise ValueError("this snapshot was not built by Snapshot.build; rebuild it")
        ridge = self.ridge if ridge is None else float(ridge)
        if ridge != self.ridge:
            raise ValueError(f"snapshot was built with ridge={self.ridge}, not {ridge}")
        k = self.index.get(arm)
        arrays = [self.xx, self.b, self.a_inv, self.chol, self.n]
        arms, index = self.arms, self.index
        comp = self._component_arrays(stats)
        grow = k is None
        if grow:
            k = len(self.arms)
            arms, index = (*self.arms, arm), None
            arrays = [np.concatenate([a, np.zeros((1, *a.shape[1:]))]) for a in arrays]
        else:
            arrays = [a.copy() for a in arrays]
        xx, b, a_inv, chol, n = arrays
        xx[k], b[k], n[k] = stats.xx, stats.b, stats.n
        if comp is not None:
            comp = comp.copy(grow=grow)
            comp.put(k, stats)
        w = self.weights if weights is KEEP else weight_vector(weights)
        rows = [k] + self._regram_rows(comp, w, exclude=k)
        refit(a_inv, chol, xx, comp, w, self.legacy_reward, ridge, rows)
        meta = self._meta(w, dual, version, updated_at)
        stats5 = (xx, b, a_inv, chol, n)
        return self._frozen(arms, self.d, stats5, comp, ridge, self.pooled, meta, index)

    def reweighted(
        self, weights: np.ndarray | Sequence[float] | None, dual: float | None = None
    ) -> Snapshot:
        """The same statistics under other objective weights (e.g. a constrained objective's
        at a new λ) and multiplier ``dual``: θ and ``stacked`` are recomputed from the arrays
        already here, nothing is refactorised (except legacy arms whose Gram changes, when
        weights appear on a snapshot built without). Equals ``build`` with these weights."""
        if self.xx is None or self.b is None:
            raise ValueError("this snapshot was not built by Snapshot.build; rebuild it")
        w = weight_vector(weights)
        comp = self._component_arrays(None)
        # θ per component does not depend on the weights: kept unless the arrays change
        keep = None if comp is None else (self.components, self.component_prior)
        if comp is None and w is not None:  # as ``build`` with weights: every arm's row
            comp = ComponentArrays.before_components(self.n, self.d)
        elif comp is not None and w is None and not comp.n.any():
            comp = keep = None  # as ``build`` without weights over no component observations
        a_inv, chol = self.a_inv, self.chol
        rows = self._regram_rows(comp, w)
        if rows:
            a_inv, chol = a_inv.copy(), chol.copy()
            refit(a_inv, chol, self.xx, comp, w, self.legacy_reward, self.ridge, rows)
            keep = None  # legacy arms' A changed: their component θ with it
        stats5 = (self.xx, self.b, a_inv, chol, self.n)
        meta = self._meta(w, dual, None, None)
        return self._frozen(
            self.arms, self.d, stats5, comp, self.ridge, self.pooled, meta, self.index, keep
        )

    def _meta(self, weights, dual, version, updated_at) -> tuple:
        return (
            weights,
            self.legacy_reward,
            self.dual if dual is None else dual,
            self.version if version is None else version,
            self.updated_at if updated_at is None else updated_at,
        )

    def _regram_rows(
        self, comp: ComponentArrays | None, weights: np.ndarray | None, exclude: int = -1
    ) -> list[int]:
        return regram_rows(comp, self.legacy_reward, self.weights, weights, exclude)

    def _component_arrays(self, stats: ArmStats | None) -> ComponentArrays | None:
        """The component sums (read-only views), None while neither the snapshot nor
        ``stats`` has any (then ``with_arm`` costs what it did before components)."""
        if self.comp_y is not None:
            return ComponentArrays(
                self.comp_y, self.comp_s, self.comp_s2, self.comp_xx, self.comp_n, self.legacy
            )
        if stats is None or stats.components is None:
            return None
        return ComponentArrays.before_components(self.n, self.d)


class Algorithm(ABC):
    """A contextual bandit: hyperparameters only; state is passed in.

    A subclass sets ``name`` and implements ``_distribution`` (the probability of serving
    each arm for a context); ``probabilities``, ``select`` and ``choose`` are built on it
    here, once, so every algorithm draws and reports propensities the same way.
    """

    name: str = "abstract"
    epsilon: float = 0.01
    ridge: float = 1.0
    forgetting: float = 1.0
    pooled: bool = True

    def __init__(
        self,
        epsilon: float = 0.01,
        ridge: float = 1.0,
        forgetting: float = 1.0,
        pooled: bool = True,
    ) -> None:
        """``epsilon``: probability floor spread over the offered arms; ``ridge``: λ of A = λI +
        Σxxᵀ; ``forgetting``: discount of old statistics; ``pooled``: see ``Snapshot``."""
        self.epsilon = float(epsilon)
        self.ridge = float(ridge)
        self.forgetting = float(forgetting)
        self.pooled = bool(pooled)

    def snapshot(
        self,
        state: PolicyState,
        arms: Sequence[str],
        d: int,
        weights: np.ndarray | Sequence[float] | None = None,
        *,
        legacy_reward: bool = True,
    ) -> Snapshot:
        """Precompute what ``select`` needs from ``state`` (see ``Snapshot``); ``weights``:
        the objective's component weights (None: θ from the reward sums, as always)."""
        return Snapshot.build(
            state,
            arms,
            d,
            self.ridge,
            pooled=self.pooled,
            weights=weights,
            legacy_reward=legacy_reward,
        )

    @abstractmethod
    def _distribution(
        self, snap: Snapshot, x: np.ndarray, rng: np.random.Generator, idx: np.ndarray | None
    ) -> Sequence[float]:
        """What an algorithm implements: the probability of serving each of the arms ``idx``
        (indices into ``snap.arms``; all arms when None) for the float64 context ``x``, as a
        list or a float64 array that sums to 1. ``rng`` is for randomised estimates."""

    def probabilities(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Distribution over the offered arms (indices into ``snap.arms``) for context x."""
        x = np.asarray(x, dtype=np.float64)
        return np.asarray(self._distribution(snap, x, rng, offered_index(snap, offered)))

    def select(
        self,
        snap: Snapshot,
        x: np.ndarray,
        rng: np.random.Generator,
        offered: Sequence[int] | None = None,
    ) -> Selection:
        """Choose one of the offered arms; report the distribution and the propensity."""
        x = np.asarray(x, dtype=np.float64)
        probs = self._distribution(snap, x, rng, offered_index(snap, offered))
        i = draw(probs, rng.random()) if len(probs) > 1 else 0
        if isinstance(probs, list):  # plain floats: cheaper than numpy for a handful of arms
            p, propensity, greedy = np.array(probs), probs[i], probs.index(max(probs))
        else:
            p, propensity, greedy = probs, float(probs[i]), int(probs.argmax())
        p.setflags(write=False)
        arm = snap.arms[i if offered is None else int(offered[i])]
        return Selection(i, arm, p, propensity, greedy)

    def choose(
        self, snap: Snapshot, x: np.ndarray, rng: np.random.Generator
    ) -> tuple[int, float, Sequence[float]]:
        """``select`` over all arms, lean: (arm index, its probability, the distribution).

        The same choice as ``select`` for the same generator state, without building a
        ``Selection``; ``x`` must already be a float64 array and the distribution may be a
        list. The proxy's hot path uses it.
        """
        probs = self._distribution(snap, x, rng, None)
        i = draw(probs, rng.random()) if len(probs) > 1 else 0
        return i, float(probs[i]), probs

    def greedy(self, snap: Snapshot, x: np.ndarray, offered: Sequence[int] | None = None) -> int:
        """Index (into offered) of the arm with the highest estimated reward θᵀx."""
        idx = np.arange(len(snap.arms)) if offered is None else np.asarray(offered)
        return int(np.argmax(snap.theta[idx] @ x))

    def hyperparameters(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
