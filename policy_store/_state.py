"""Learned state: additive sufficient statistics per arm, and their byte encoding.

For each arm we keep only data-dependent sums (never the prior):

    xx = Σ w·x·xᵀ   (d × d)      b = Σ w·r·x   (d,)      n = Σ w

The ridge prior is added when a snapshot is built: ``A = ridge·I + xx``. Keeping
the prior out of the stored sums makes them purely additive: the state learnt
from two streams is the element-wise sum of the two states (``merge``), any
number of workers can add deltas, and replaying rewards rebuilds the state.

**The update rule** (one home: both stores and ``ContextualBandit`` use it):
a batch of observations becomes one delta per arm (``aggregate``),

    Δxx = Σ w·x·xᵀ      Δb = Σ w·r·x      Δn = Σ w

and an arm's statistics after the batch are ``old·γ^Δn + Δ`` with γ the policy's
forgetting (``ArmStats.updated``, ``apply_deltas``; 1 = no forgetting). The
decay is per unit of weight, so a batch of weight Δn ages the old sums as much as
Δn single observations would; inside a batch nothing is decayed. The Redis store
runs the same arithmetic in ``apply.lua`` (to be atomic with its dedupe) with the
factor ``decay_factor(γ, Δn)`` computed here; tests/integration/test_update_rule.py
checks that every store gives the same sums as this module.

Byte encoding (Redis values, never pickle): little-endian float64, row-major,
shape implied by the policy's ``n_features``: ``xx`` is d·d doubles, ``b`` d.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidDeltaError

_F8 = np.dtype("<f8")


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm. Arrays are read-only."""

    xx: np.ndarray
    b: np.ndarray
    n: float

    @classmethod
    def zeros(cls, d: int) -> ArmStats:
        return cls.of(np.zeros((d, d)), np.zeros(d), 0.0)

    @classmethod
    def of(cls, xx: np.ndarray, b: np.ndarray, n: float) -> ArmStats:
        xx = np.array(xx, dtype=np.float64, copy=True)
        b = np.array(b, dtype=np.float64, copy=True)
        xx.setflags(write=False)
        b.setflags(write=False)
        return cls(xx, b, float(n))

    @property
    def d(self) -> int:
        return int(self.b.shape[0])

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats.of(self.xx + other.xx, self.b + other.b, self.n + other.n)

    def decayed(self, factor: float) -> ArmStats:
        """The statistics multiplied by ``factor`` (forgetting)."""
        if factor == 1.0:
            return self
        return ArmStats.of(self.xx * factor, self.b * factor, self.n * factor)

    def updated(self, delta: ArmStats, forgetting: float = 1.0) -> ArmStats:
        """The statistics after adding ``delta``: ``self·γ^Δn + delta`` (the update rule).

        >>> old = ArmStats.of(np.eye(1), np.ones(1), 2.0)
        >>> new = old.updated(ArmStats.of(np.eye(1), np.zeros(1), 1.0), forgetting=0.5)
        >>> float(new.xx[0, 0]), float(new.b[0]), new.n
        (1.5, 0.5, 2.0)
        """
        return self.decayed(decay_factor(forgetting, delta.n)) + delta

    def validate(self, d: int) -> None:
        """Raise ``InvalidDeltaError`` unless shapes match ``d`` and all numbers are finite."""
        if self.xx.shape != (d, d) or self.b.shape != (d,):
            raise InvalidDeltaError(
                f"delta has shape xx={self.xx.shape}, b={self.b.shape}; the policy has "
                f"n_features={d}, so xx must be ({d}, {d}) and b ({d},)"
            )
        if not (np.isfinite(self.xx).all() and np.isfinite(self.b).all() and np.isfinite(self.n)):
            raise InvalidDeltaError("delta contains NaN or infinity; nothing was applied")

    # -- bytes -------------------------------------------------------------------------------
    def xx_bytes(self) -> bytes:
        return self.xx.astype(_F8, copy=False).tobytes(order="C")

    def b_bytes(self) -> bytes:
        return self.b.astype(_F8, copy=False).tobytes(order="C")

    @classmethod
    def from_bytes(cls, xx: bytes, b: bytes, n: float | bytes | str, d: int) -> ArmStats:
        xx_arr = np.frombuffer(xx, dtype=_F8)
        b_arr = np.frombuffer(b, dtype=_F8)
        if xx_arr.size != d * d or b_arr.size != d:
            raise InvalidDeltaError(
                f"stored state has {xx_arr.size} + {b_arr.size} doubles, expected {d * d} + {d}"
            )
        return cls.of(xx_arr.reshape(d, d), b_arr, float(n))


@dataclass(frozen=True)
class Observation:
    """One rewarded decision, the unit the store deduplicates on.

    ``weight`` lets off-policy data count for less (e.g. baseline-cohort rewards).
    """

    decision_id: str
    arm: str
    features: tuple[float, ...]
    reward: float
    weight: float = 1.0


def decay_factor(forgetting: float, dn: float) -> float:
    """``γ^Δn``: what the old statistics of an arm are multiplied by before a delta of
    weight ``dn`` is added."""
    return forgetting**dn


def aggregate(observations: Iterable[Observation], d: int) -> dict[str, ArmStats]:
    """Sum observations into one delta per arm (vectorised per arm): the only rule that
    turns observations into statistics. Raises ``InvalidDeltaError`` on a wrong feature
    length or a non-finite number."""
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
        X = np.asarray([o.features for o in items], dtype=np.float64).reshape(len(items), -1)
        if X.shape[1] != d:
            raise InvalidDeltaError(
                f"observation for arm {arm!r} has {X.shape[1]} features, the policy expects {d}"
            )
        w = np.asarray([o.weight for o in items], dtype=np.float64)
        r = np.asarray([o.reward for o in items], dtype=np.float64)
        xx = (X * w[:, None]).T @ X
        b = X.T @ (w * r)
        stats = ArmStats.of(xx, b, float(w.sum()))
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
    """All arms' statistics at one version of a policy."""

    arms: Mapping[str, ArmStats]
    version: int = 0
    updated_at: float | None = None

    def merge(self, other: PolicyState) -> PolicyState:
        """State learnt from both streams (sums; arms missing on one side count as zero)."""
        return merge(self, other)


def merge(s1: PolicyState, s2: PolicyState) -> PolicyState:
    """``merge(s1, s2)`` equals learning s1's stream then s2's (without forgetting)."""
    arms: dict[str, ArmStats] = dict(s1.arms)
    for arm, st in s2.arms.items():
        arms[arm] = arms[arm] + st if arm in arms else st
    return PolicyState(arms=arms, version=max(s1.version, s2.version))
