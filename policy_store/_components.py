"""Outcome components: their values, the reward's weights over them, and their sums.

An outcome is described by C = 5 values (``COMPONENTS``): quality, cost, latency (each
normalised to [0, 1] like ``RewardSpec.reward`` does), error and one. With them the
spec's scalar reward is linear, r = α·v (``reward_weights``), so per-arm sums of the
values times the context (``ComponentStats``) are enough to build any weighted
combination of the components at selection time. How the sums are updated is the
update rule of ``policy_store._state``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._config import RewardSpec
from ._errors import InvalidDeltaError

_F8 = np.dtype("<f8")

#: The outcome components kept per arm, in this order (C = 5). ``one`` is 1 for every
#: observation (its sums are the arm's counts and mean context, and carry the constant
#: part of the reward); ``error`` is 1 for a call that ended in an error.
COMPONENTS: tuple[str, ...] = ("quality", "cost", "latency", "error", "one")
N_COMPONENTS = len(COMPONENTS)
#: The values of an error: it delivers no quality and, by convention, no cost or latency.
ERROR_VALUES: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 1.0)


def _clip(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def component_values(
    spec: RewardSpec,
    quality: float | None = None,
    cost: float | None = None,
    latency: float | None = None,
    error: bool = False,
    *,
    normalised: bool = False,
) -> tuple[float, ...]:
    """The C values of one outcome, normalised like ``RewardSpec.reward`` does.

    Missing components take the spec's defaults; cost and latency are divided by the
    spec's caps (unless ``normalised``: the values are already in [0, 1], e.g. a
    ``RewardEvent``'s components, and are only clipped); an error gives
    ``ERROR_VALUES``. ``reward_weights(spec) @ values == spec.reward(...)``.

    >>> component_values(RewardSpec(cost_cap=0.1), quality=0.9, cost=0.05)
    (0.9, 0.5, 0.5, 0.0, 1.0)
    """
    if error:
        return ERROR_VALUES
    q = spec.default_quality if quality is None else _clip(quality)
    if cost is None:
        c = spec.default_cost
    else:
        c = _clip(cost) if normalised else spec.normalise_cost(float(cost))
    if latency is None:
        lat = spec.default_latency
    else:
        lat = _clip(latency) if normalised else spec.normalise_latency(float(latency))
    return (q, c, lat, 0.0, 1.0)


def reward_weights(spec: RewardSpec) -> np.ndarray:
    """α (C,) with ``spec.reward(...) == α · component_values(spec, ...)``:

        α = (wq, −wc, −wl, failure_reward − wc − wl, wc + wl)

    (reward = wq·q + wc·(1 − c) + wl·(1 − l); an error's values (0, 0, 0, 1, 1) give
    failure_reward).
    """
    wq, wc, wl = spec.quality_weight, spec.cost_weight, spec.latency_weight
    return np.array([wq, -wc, -wl, spec.failure_reward - wc - wl, wc + wl], dtype=np.float64)


def frozen_array(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def all_finite(arrays: list[np.ndarray], *numbers: float) -> bool:
    """Whether every number of ``arrays`` and ``numbers`` is finite (one pass over them all)."""
    for x in numbers:
        if not math.isfinite(x):
            return False
    return bool(np.isfinite(np.concatenate(arrays, axis=None)).all())


def owned(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only without a copy: only for a float64 array nobody else can write
    (just computed here, or already read-only)."""
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ComponentStats:
    """Component sums of one arm: ``y`` (C, d), ``s`` (C,), ``s2`` (C,), read-only.

    ``xx``/``n`` are the Gram matrix and weight of the observations that carried
    components, present only for a legacy arm (see the module docstring); None means
    "the arm's own ``xx`` and ``n``".
    """

    y: np.ndarray
    s: np.ndarray
    s2: np.ndarray
    xx: np.ndarray | None = None
    n: float | None = None

    @classmethod
    def of(
        cls,
        y: np.ndarray,
        s: np.ndarray,
        s2: np.ndarray,
        xx: np.ndarray | None = None,
        n: float | None = None,
    ) -> ComponentStats:
        if (xx is None) != (n is None):
            raise ValueError("give both xx and n of the component observations, or neither")
        return cls(
            frozen_array(y),
            frozen_array(s),
            frozen_array(s2),
            None if xx is None else frozen_array(xx),
            None if n is None else float(n),
        )

    @classmethod
    def _owning(cls, y, s, s2, xx=None, n=None) -> ComponentStats:
        """``of`` for arrays just computed by the update rule (``owned``: no copies)."""
        return cls(owned(y), owned(s), owned(s2), None if xx is None else owned(xx), n)

    @property
    def legacy(self) -> bool:
        """Whether the component observations are a subset of the arm's (explicit Gram)."""
        return self.xx is not None

    def scaled(self, factor: float) -> ComponentStats:
        if factor == 1.0:
            return self
        xx = None if self.xx is None else self.xx * factor
        n = None if self.n is None else self.n * factor
        return ComponentStats._owning(self.y * factor, self.s * factor, self.s2 * factor, xx, n)

    def arrays(self) -> list[np.ndarray]:
        """y, s, s2 and the explicit Gram when there is one."""
        return [self.y, self.s, self.s2] + ([] if self.xx is None else [self.xx])

    def validate(self, d: int) -> None:
        """Raise ``InvalidDeltaError`` unless shapes match ``d`` and all numbers are finite."""
        self.check_shapes(d)
        if not all_finite(self.arrays(), self.n or 0.0):
            raise InvalidDeltaError("component sums contain NaN or infinity; nothing was applied")

    def check_shapes(self, d: int) -> None:
        """Raise ``InvalidDeltaError`` unless the shapes match ``d`` features."""
        C = N_COMPONENTS
        if self.y.shape != (C, d) or self.s.shape != (C,) or self.s2.shape != (C,):
            raise InvalidDeltaError(
                f"component sums have shape y={self.y.shape}, s={self.s.shape}; the policy has "
                f"n_features={d} and {C} components, so y must be ({C}, {d}) and s ({C},)"
            )
        if self.xx is not None and self.xx.shape != (d, d):
            raise InvalidDeltaError(
                f"component Gram has shape {self.xx.shape}, expected ({d}, {d})"
            )

    # -- bytes -------------------------------------------------------------------------------
    def blob(self) -> bytes:
        """y row-major, then s, then s2: C·d + 2C little-endian doubles."""
        return np.concatenate([self.y.ravel(), self.s, self.s2]).astype(_F8).tobytes()

    def xx_bytes(self) -> bytes:
        """The explicit Gram (d·d doubles), or b"" when it is the arm's own."""
        return b"" if self.xx is None else self.xx.astype(_F8, copy=False).tobytes(order="C")

    @classmethod
    def from_bytes(
        cls, blob: bytes, d: int, xx: bytes | None = None, n: float | bytes | str | None = None
    ) -> ComponentStats:
        C = N_COMPONENTS
        arr = np.frombuffer(blob, dtype=_F8)
        if arr.size != C * d + 2 * C:
            raise InvalidDeltaError(
                f"stored component sums have {arr.size} doubles, expected {C * d + 2 * C}"
            )
        gram = None
        if xx is not None and n is not None:
            g = np.frombuffer(xx, dtype=_F8)
            if g.size != d * d:
                raise InvalidDeltaError(f"stored component Gram has {g.size} doubles, not {d * d}")
            gram = g.reshape(d, d)
        return cls.of(
            arr[: C * d].reshape(C, d),
            arr[C * d : C * d + C],
            arr[C * d + C :],
            gram,
            None if gram is None else float(n),
        )
