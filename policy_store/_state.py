"""Learned state: additive sufficient statistics per arm, and their byte encoding.

For each arm we keep only data-dependent sums (never the prior):

    xx = Σ w·x·xᵀ   (d × d)      b = Σ w·r·x   (d,)      n = Σ w

and, per outcome component c ∈ ``COMPONENTS`` (quality, cost, latency, error, one) with
value v_c (``component_values``), the component sums (``ComponentStats``):

    y = Σ w·v_c·x   (C × d)      s = Σ w·v_c   (C,)      s2 = Σ w·v_c²   (C,)

With these values the reward of a ``RewardSpec`` is linear, r = α·v (``reward_weights``),
so b = αᵀy for an arm whose observations all carried components: the objective (any
weights, a Lagrangian) is applied when a snapshot is built, without relearning.

The ridge prior is added when a snapshot is built: ``A = ridge·I + xx``. Keeping
the prior out of the stored sums makes them purely additive: the state learnt
from two streams is the element-wise sum of the two states (``merge``), any
number of workers can add deltas, and replaying rewards rebuilds the state.

**The update rule** (one home: both stores and ``ContextualBandit`` use it):
a batch of observations becomes one delta per arm (``aggregate``),

    Δxx = Σ w·x·xᵀ      Δb = Σ w·r·x      Δn = Σ w      (+ Δy, Δs, Δs2)

and an arm's statistics after the batch are ``old·γ^Δn + Δ`` with γ the policy's
forgetting (``ArmStats.updated``, ``apply_deltas``; 1 = no forgetting). The
decay is per unit of weight, so a batch of weight Δn ages the old sums as much as
Δn single observations would; inside a batch nothing is decayed. The Redis store
runs the same arithmetic in ``apply.lua`` (to be atomic with its dedupe) with the
factor ``decay_factor(γ, Δn)`` computed here; tests/integration/test_update_rule.py
checks that every store gives the same sums as this module.

**Which observations the component sums cover.** Usually all of an arm's: then the
Gram matrix and weight of the component observations are the arm's own ``xx`` and
``n`` and are not stored twice. An arm that also has observations without components
(a *legacy* arm: it had data before components existed, or it was fed scalar rewards)
keeps them explicitly, ``ComponentStats.xx`` = Σ w·x·xᵀ and ``ComponentStats.n`` = Σ w
over the observations that carried components. Legacy migration: an arm with ``n > 0``
and no component sums gets, at its first component-carrying delta, component sums and
that explicit Gram started from that delta; from then on both are maintained (decayed
with the arm). A delta without components on an arm that has component sums makes the
Gram explicit the same way. ``ArmStats.updated`` / ``+`` implement exactly this.

Byte encoding (Redis values, never pickle): little-endian float64, row-major,
shape implied by the policy's ``n_features``: ``xx`` is d·d doubles, ``b`` d, the
component blob C·d + 2C (y row-major, then s, then s2), the legacy Gram d·d.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ._components import COMPONENTS, N_COMPONENTS, ComponentStats, all_finite, frozen_array, owned
from ._errors import InvalidDeltaError

_F8 = np.dtype("<f8")


def _lin(old: np.ndarray | None, factor: float, delta: np.ndarray | None) -> np.ndarray:
    """``old·factor + delta`` with None counting as zero (at least one is given)."""
    if old is None:
        assert delta is not None
        return delta
    scaled = old if factor == 1.0 else old * factor
    return scaled if delta is None else scaled + delta


def _component_gram(st: ArmStats) -> tuple[np.ndarray | None, float, bool]:
    """Gram matrix (None = zero) and weight of ``st``'s component-carrying observations,
    and whether they differ from all of its observations (then the Gram is explicit)."""
    c = st.components
    if c is None:
        return None, 0.0, st.n > 0
    if c.xx is None:
        return st.xx, st.n, False
    return c.xx, float(c.n or 0.0), True


def _combined(old: ArmStats, factor: float, delta: ArmStats) -> ComponentStats | None:
    """The component sums of ``old·factor + delta`` (the legacy rule of the module docstring)."""
    co, cd = old.components, delta.components
    if co is None and cd is None:
        return None
    y = _lin(None if co is None else co.y, factor, None if cd is None else cd.y)
    s = _lin(None if co is None else co.s, factor, None if cd is None else cd.s)
    s2 = _lin(None if co is None else co.s2, factor, None if cd is None else cd.s2)
    g_old, n_old, explicit_old = _component_gram(old)
    g_new, n_new, explicit_new = _component_gram(delta)
    if not (explicit_old or explicit_new):
        return ComponentStats._owning(y, s, s2)
    if g_old is None and g_new is None:
        gram = np.zeros_like(old.xx)
    else:
        gram = _lin(g_old, factor, g_new)
    return ComponentStats._owning(y, s, s2, gram, float(n_old * factor + n_new))


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm. Arrays are read-only.

    ``components`` holds the component sums (None: the arm never had an observation
    with components, e.g. a state from before they existed or ``ContextualBandit``'s).
    """

    xx: np.ndarray
    b: np.ndarray
    n: float
    components: ComponentStats | None = None

    @classmethod
    def zeros(cls, d: int) -> ArmStats:
        return cls.of(np.zeros((d, d)), np.zeros(d), 0.0)

    @classmethod
    def of(
        cls, xx: np.ndarray, b: np.ndarray, n: float, components: ComponentStats | None = None
    ) -> ArmStats:
        return cls(frozen_array(xx), frozen_array(b), float(n), components)

    @classmethod
    def _owning(
        cls, xx: np.ndarray, b: np.ndarray, n: float, components: ComponentStats | None = None
    ) -> ArmStats:
        """``of`` for arrays just computed by the update rule (``owned``: no copies)."""
        return cls(owned(xx), owned(b), float(n), components)

    @property
    def d(self) -> int:
        return int(self.b.shape[0])

    def __add__(self, other: ArmStats) -> ArmStats:
        return self._plus(1.0, other)

    def _plus(self, factor: float, delta: ArmStats) -> ArmStats:
        """``self·factor + delta``, component sums included."""
        return ArmStats._owning(
            _lin(self.xx, factor, delta.xx),
            _lin(self.b, factor, delta.b),
            self.n * factor + delta.n,
            _combined(self, factor, delta),
        )

    def decayed(self, factor: float) -> ArmStats:
        """The statistics multiplied by ``factor`` (forgetting)."""
        if factor == 1.0:
            return self
        comp = None if self.components is None else self.components.scaled(factor)
        return ArmStats._owning(self.xx * factor, self.b * factor, self.n * factor, comp)

    def updated(self, delta: ArmStats, forgetting: float = 1.0) -> ArmStats:
        """The statistics after adding ``delta``: ``self·γ^Δn + delta`` (the update rule),
        component sums included (legacy migration: see the module docstring).

        >>> old = ArmStats.of(np.eye(1), np.ones(1), 2.0)
        >>> new = old.updated(ArmStats.of(np.eye(1), np.zeros(1), 1.0), forgetting=0.5)
        >>> float(new.xx[0, 0]), float(new.b[0]), new.n
        (1.5, 0.5, 2.0)
        """
        return self._plus(decay_factor(forgetting, delta.n), delta)

    def validate(self, d: int) -> None:
        """Raise ``InvalidDeltaError`` unless shapes match ``d`` and all numbers are finite."""
        if self.xx.shape != (d, d) or self.b.shape != (d,):
            raise InvalidDeltaError(
                f"delta has shape xx={self.xx.shape}, b={self.b.shape}; the policy has "
                f"n_features={d}, so xx must be ({d}, {d}) and b ({d},)"
            )
        c = self.components
        arrays = [self.xx, self.b]
        if c is not None:
            c.check_shapes(d)
            arrays += c.arrays()
        if not all_finite(arrays, self.n, 0.0 if c is None else c.n or 0.0):
            if not all_finite([self.xx, self.b], self.n):
                raise InvalidDeltaError("delta contains NaN or infinity; nothing was applied")
            c.validate(d)  # the component sums are not finite: says so

    # -- bytes -------------------------------------------------------------------------------
    def xx_bytes(self) -> bytes:
        return self.xx.astype(_F8, copy=False).tobytes(order="C")

    def b_bytes(self) -> bytes:
        return self.b.astype(_F8, copy=False).tobytes(order="C")

    @classmethod
    def from_bytes(
        cls,
        xx: bytes,
        b: bytes,
        n: float | bytes | str,
        d: int,
        components: ComponentStats | None = None,
    ) -> ArmStats:
        xx_arr = np.frombuffer(xx, dtype=_F8)
        b_arr = np.frombuffer(b, dtype=_F8)
        if xx_arr.size != d * d or b_arr.size != d:
            raise InvalidDeltaError(
                f"stored state has {xx_arr.size} + {b_arr.size} doubles, expected {d * d} + {d}"
            )
        return cls.of(xx_arr.reshape(d, d), b_arr, float(n), components)


@dataclass(frozen=True)
class Observation:
    """One rewarded decision, the unit the store deduplicates on.

    ``weight`` lets off-policy data count for less (e.g. baseline-cohort rewards).
    ``components`` are its C values (``component_values``), or None when only the
    scalar reward is known (then the arm's component sums do not cover it).
    ``position`` is where its reward sits in the rewards topic, ``(partition, offset,
    made_at)`` with ``made_at`` the reward's ``reward_ts`` (a re-sent copy carries the
    same): a store then dedupes by offset watermark and, for re-sent copies, by
    decision_id within a bounded window (``PolicyStore.apply``). None for in-process use.
    """

    decision_id: str
    arm: str
    features: tuple[float, ...]
    reward: float
    weight: float = 1.0
    components: tuple[float, ...] | None = None
    position: tuple[int, int, float] | None = None


def decay_factor(forgetting: float, dn: float) -> float:
    """``γ^Δn``: what the old statistics of an arm are multiplied by before a delta of
    weight ``dn`` is added."""
    return forgetting**dn


def _values(rows: list[tuple[float, ...]], arm: str) -> np.ndarray:
    """The component values of observations as an (n, C) array, checked."""
    V = np.asarray(rows, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != N_COMPONENTS:
        raise InvalidDeltaError(
            f"observations for arm {arm!r} carry {V.shape[-1] if V.ndim else 0} component "
            f"values, expected {N_COMPONENTS} ({', '.join(COMPONENTS)})"
        )
    return V


def _component_delta(
    items: list[Observation], X: np.ndarray, w: np.ndarray, arm: str
) -> ComponentStats | None:
    """Component sums of one arm's batch: over the observations that carry components
    (explicit Gram and weight when that is not all of them)."""
    has = [o.components is not None for o in items]
    if not any(has):
        return None
    every = all(has)
    if not every:
        mask = np.asarray(has)
        X, w = X[mask], w[mask]
    V = _values([o.components for o in items if o.components is not None], arm)
    wv = V * w[:, None]
    y, s, s2 = wv.T @ X, wv.sum(axis=0), (wv * V).sum(axis=0)
    if every:
        return ComponentStats._owning(y, s, s2)
    return ComponentStats._owning(y, s, s2, (X * w[:, None]).T @ X, float(w.sum()))


def _batch(items: list[Observation], d: int, arm: str) -> ArmStats:
    """One arm's delta from its observations (features already checked)."""
    if len(items) == 1:  # the in-process case: each sum has one term, no stacking needed
        o = items[0]
        x = np.array(o.features, dtype=np.float64)
        w = float(o.weight)
        comp = None
        if o.components is not None:
            v = _values([o.components], arm)[0]
            wv = v * w
            comp = ComponentStats._owning(np.outer(wv, x), wv, wv * v)
        return ArmStats._owning(np.outer(x * w, x), x * (w * o.reward), w, comp)
    X = np.asarray([o.features for o in items], dtype=np.float64).reshape(len(items), -1)
    if X.shape[1] != d:
        raise InvalidDeltaError(
            f"observation for arm {arm!r} has {X.shape[1]} features, the policy expects {d}"
        )
    w = np.asarray([o.weight for o in items], dtype=np.float64)
    r = np.asarray([o.reward for o in items], dtype=np.float64)
    xx = (X * w[:, None]).T @ X
    b = X.T @ (w * r)
    return ArmStats._owning(xx, b, float(w.sum()), _component_delta(items, X, w, arm))


def aggregate(observations: Iterable[Observation], d: int) -> dict[str, ArmStats]:
    """Sum observations into one delta per arm (vectorised per arm): the only rule that
    turns observations into statistics. Raises ``InvalidDeltaError`` on a wrong feature
    length, a wrong number of component values or a non-finite number.

    Component sums cover the observations that carry components; when an arm's batch
    mixes both kinds, the delta also carries the Gram and weight of those (legacy rule).
    An arm with a single observation takes the same products without stacking (the
    numbers are those of the batched arithmetic, each sum having one term)."""
    by_arm: dict[str, list[Observation]] = {}
    for obs in observations:
        by_arm.setdefault(obs.arm, []).append(obs)
    out: dict[str, ArmStats] = {}
    for arm, items in by_arm.items():
        for o in items:
            if len(o.features) != d:
                raise InvalidDeltaError(
                    f"decision {o.decision_id!r} has {len(o.features)} features, "
                    f"the policy expects n_features={d}"
                )
        stats = _batch(items, d, arm)
        stats.validate(d)
        out[arm] = stats
    return out


def apply_deltas(
    arms: Mapping[str, ArmStats], deltas: Mapping[str, ArmStats], forgetting: float = 1.0
) -> dict[str, ArmStats]:
    """Every arm's statistics after one batch of ``deltas`` (arms without a delta unchanged,
    arms without statistics start from zero). Pure: ``arms`` is not modified."""
    out = dict(arms)
    for arm, delta in deltas.items():
        old = out.get(arm)
        out[arm] = delta if old is None else old.updated(delta, forgetting)
    return out


@dataclass(frozen=True)
class PolicyState:
    """All arms' statistics at one version of a policy, and its Lagrange multiplier.

    ``dual`` (λ ≥ 0) is the multiplier of a constrained objective, one per policy, moved
    by ``PolicyStore.apply(..., dual_delta=...)`` atomically with the statistics.
    """

    arms: Mapping[str, ArmStats]
    version: int = 0
    updated_at: float | None = None
    dual: float = 0.0

    def merge(self, other: PolicyState) -> PolicyState:
        """State learnt from both streams (sums; arms missing on one side count as zero)."""
        return merge(self, other)


def merge(s1: PolicyState, s2: PolicyState) -> PolicyState:
    """``merge(s1, s2)`` equals learning s1's stream then s2's (without forgetting).

    The multipliers add (each is the sum of its stream's dual steps; exact unless the
    projection λ ≥ 0 clipped one of them)."""
    arms: dict[str, ArmStats] = dict(s1.arms)
    for arm, st in s2.arms.items():
        arms[arm] = arms[arm] + st if arm in arms else st
    return PolicyState(arms=arms, version=max(s1.version, s2.version), dual=s1.dual + s2.dual)
