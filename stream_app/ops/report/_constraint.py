"""The cohort report's constraint section: does the learned cohort keep the policy's objective?

Uses the report's own intervals (no second statistic):

- quality floor with a margin: quality non-inferiority of the learned cohort against the
  baseline cohort at the objective's margin — the interval of quality_rl − quality_baseline
  against −margin (the report's non-inferiority test);
- absolute quality floor: the learned cohort's mean quality interval against the floor;
- budget: the learned cohort's mean cost per request interval against ``max_cost``
  (normalised by ``cost_cap`` as the rewards carry cost; shown in dollars with a cap).

The verdict is ``stream_app.ops._constraint.verdict``: held / violated / not enough data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from policy_store import PolicyConfig, normalised_max_cost
from policy_store.evaluation import Interval, json_safe

from .._constraint import Verdict, cost_scale, describe_objective, money, verdict
from ._report import CohortReport


@dataclass(frozen=True)
class ConstraintCheck:
    """The learned cohort against the objective: ``measured`` (an interval of the
    report) compared with ``target``, both normalised; ``scale``/``unit`` show cost in the
    outcome's units."""

    kind: str
    objective: str
    quantity: str  # what ``measured`` is, in words
    measured: Interval
    target: float
    verdict: Verdict
    scale: float = 1.0
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "kind": self.kind,
                "objective": self.objective,
                "quantity": self.quantity,
                "measured": self.measured.to_dict(),
                "target": self.target,
                "verdict": self.verdict,
                "scale": self.scale,
                "unit": self.unit,
            }
        )

    def _shown(self, v: float, signed: bool = False) -> str:
        if not math.isfinite(v):
            return "n/a"
        if self.kind == "budget":
            return money(v * self.scale, self.unit)
        return f"{v:+.4f}" if signed else f"{v:.4f}"

    def to_text(self) -> str:
        m, signed = self.measured, self.quantity.startswith("quality difference")
        interval = (
            f"[{self._shown(m.low, signed)}, {self._shown(m.high, signed)}]"
            if math.isfinite(m.low)
            else "(interval n/a)"
        )
        sign = "≥" if self.kind == "quality_floor" else "≤"
        return "\n".join(
            [
                f"objective: {self.objective}",
                f"  {self.quantity}: {self._shown(m.estimate, signed)} {interval} "
                f"({m.level:.0%} interval), must stay {sign} {self._shown(self.target, signed)}"
                f" → {self.verdict.upper()}",
            ]
        )


def check_constraint(report: CohortReport, config: PolicyConfig) -> ConstraintCheck | None:
    """The constraint section of ``report`` for ``config``'s objective (None when weighted)."""
    obj = config.objective
    if not obj.constrained:
        return None
    scale, unit = 1.0, ""
    if obj.kind == "budget":
        measured = report.metrics["cost"].rl_mean
        target = normalised_max_cost(obj, config.reward)
        quantity = "learned cohort's mean cost per request"
        scale, unit = cost_scale(config)
    elif obj.quality_margin is not None:
        measured = report.quality_difference
        target = -float(obj.quality_margin)
        quantity = "quality difference learned − baseline cohort"
    else:
        measured = report.metrics["quality"].rl_mean
        target = float(obj.quality_floor or 0.0)
        quantity = "learned cohort's mean quality"
    return ConstraintCheck(
        kind=obj.kind,
        objective=describe_objective(config),
        quantity=quantity,
        measured=measured,
        target=target,
        verdict=verdict(obj.kind, target, measured.low, measured.high),
        scale=scale,
        unit=unit,
    )


def with_constraint(report: CohortReport, config: PolicyConfig) -> CohortReport:
    """``report`` with its constraint section for ``config``'s objective."""
    return replace(report, constraint=check_constraint(report, config))
