"""What ``inspect``, the dashboard and ``rl-commons report`` say about a policy's objective.

Pure functions over a config and a learned state; the constraint arithmetic itself
(target, confidence buffer, measured value, multiplier) is ``policy_store``'s
``constraint_status`` on the snapshot the proxies select with (``build_snapshot``).
This module only words it and adds the interval and the verdict:

- **interval**: the measured mean ± z·se at ``level`` (two-sided, 95% by default),
  where se also carries the uncertainty of an estimated target (a floor relative to
  the baseline arm). It is ``constraint_status``'s buffer at confidence (1 + level)/2.
- **verdict** (``verdict``): *held* when the whole interval is on the safe side of the
  target, *violated* when the whole interval is on the wrong side, *not enough data*
  otherwise (the interval still straddles the target, or fewer than two observations
  carry outcome components). The same rule as the report's non-inferiority test.

Values are kept normalised (cost divided by ``cost_cap``) as the statistics hold them;
``scale`` and ``unit`` say how to show them in the outcome's units (dollars with a cap).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from policy_store import (
    Objective,
    PolicyConfig,
    PolicyState,
    Snapshot,
    build_snapshot,
    constraint_status,
    make_algorithm,
)

Verdict = Literal["held", "violated", "not enough data"]


def verdict(kind: str, target: float, low: float, high: float) -> Verdict:
    """Held / violated / not enough data for an interval [low, high] against ``target``:
    a quality floor holds when low > target, a budget when high < target.

    >>> verdict("quality_floor", 0.85, 0.86, 0.88), verdict("budget", 0.2, 0.21, 0.25)
    ('held', 'violated')
    >>> verdict("budget", 0.2, 0.18, 0.22)
    'not enough data'
    """
    if not all(math.isfinite(v) for v in (target, low, high)):
        return "not enough data"
    if kind == "quality_floor":
        return "held" if low > target else "violated" if high < target else "not enough data"
    return "held" if high < target else "violated" if low > target else "not enough data"


def cost_scale(config: PolicyConfig) -> tuple[float, str]:
    """(factor, unit) that turn a normalised cost into the outcome's units: ($cap, "$")
    with ``cost_cap``, else (1, "")."""
    cap = config.reward.cost_cap
    return (float(cap), "$") if cap is not None else (1.0, "")


def money(value: float, unit: str) -> str:
    """A cost in the outcome's units: '$0.0150' or '0.150'."""
    if not math.isfinite(value):
        return "n/a"
    return f"${value:.4f}" if unit == "$" else f"{value:.3f}"


def describe_objective(config: PolicyConfig, objective: Objective | None = None) -> str:
    """One line an operator reads: what the policy optimises and under which constraint.

    >>> from policy_store import make_config
    >>> describe_objective(make_config(name="p", arms=["a"], n_features=1))
    'weighted reward 0.5·quality + 0.3·(1 − cost) + 0.2·(1 − latency)'
    """
    obj = config.objective if objective is None else objective
    lat = f" + {obj.latency_weight:g}·latency" if obj.latency_weight else ""
    if obj.kind == "quality_floor":
        floor = (
            f"{obj.quality_floor:g}"
            if obj.quality_floor is not None
            else f"{config.fallback_arm}'s quality − {obj.quality_margin:g}"
        )
        return f"quality floor: minimise cost{lat} while mean quality ≥ {floor}"
    if obj.kind == "budget":
        _, unit = cost_scale(config)
        cost = money(float(obj.max_cost or 0.0), unit)
        per = " per request" if unit else " per request (normalised cost)"
        return f"budget: maximise quality{lat.replace('+', '−')} while mean cost ≤ {cost}{per}"
    r = config.reward
    return (
        f"weighted reward {r.quality_weight:g}·quality + {r.cost_weight:g}·(1 − cost) + "
        f"{r.latency_weight:g}·(1 − latency)"
    )


@dataclass(frozen=True)
class ConstraintView:
    """A constrained policy's standing, for people (normalised units; see ``scale``).

    ``target``: the floor or budget; ``buffer``/``bound``: the confidence tightening and
    the value the multiplier enforces; ``measured`` with [``low``, ``high``] at ``level``
    over ``n`` observations with outcome components (every cohort that updates the
    policy); ``dual``: the multiplier λ; ``scale``/``unit``: multiply cost values by
    ``scale`` to show them in ``unit`` ("$" with ``cost_cap``).
    """

    kind: str
    component: str
    target: float
    buffer: float
    bound: float
    measured: float
    low: float
    high: float
    level: float
    n: float
    dual: float
    verdict: Verdict
    scale: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shown(self, value: float) -> str:
        """A value of this constraint in the outcome's units."""
        if self.component == "cost":
            return money(value * self.scale, self.unit)
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"

    def lines(self) -> list[str]:
        """The human-readable lines of ``inspect``."""
        name = "floor" if self.kind == "quality_floor" else "budget"
        half = (self.high - self.low) / 2.0
        measured = self.shown(self.measured)
        if math.isfinite(half):
            measured += f" ± {self.shown(half).lstrip('$')}"
        return [
            f"{name} {self.shown(self.target)}, enforced at {self.shown(self.bound)} "
            f"(buffer {self.shown(self.buffer).lstrip('$')})",
            f"measured mean {self.component} {measured} ({self.level:.0%} interval, "
            f"n {self.n:g}) → {self.verdict.upper()}",
            f"multiplier λ {self.dual:.4g}",
        ]


def constraint_view(
    config: PolicyConfig, state: PolicyState, *, level: float = 0.95, snap: Snapshot | None = None
) -> ConstraintView | None:
    """The constraint of ``config``'s objective on ``state`` (None for the weighted objective);
    ``snap``: the snapshot already built from them with ``build_snapshot``, if at hand."""
    if not config.objective.constrained:
        return None
    if snap is None:
        snap = build_snapshot(make_algorithm(config.algorithm), config, state)
    status = constraint_status(config, snap)
    if status is None:
        return None
    wide_objective = config.objective.model_copy(update={"confidence": 0.5 + level / 2.0})
    wide = constraint_status(config.model_copy(update={"objective": wide_objective}), snap)
    half = wide.buffer if wide is not None and status.n >= 2.0 else math.nan
    low, high = status.measured - half, status.measured + half
    scale, unit = cost_scale(config) if status.component == "cost" else (1.0, "")
    return ConstraintView(
        kind=config.objective.kind,
        component=status.component,
        target=status.target,
        buffer=status.buffer,
        bound=status.bound,
        measured=status.measured,
        low=low,
        high=high,
        level=level,
        n=status.n,
        dual=status.dual,
        verdict=verdict(config.objective.kind, status.target, low, high),
        scale=scale,
        unit=unit,
    )
