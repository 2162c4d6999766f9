"""Gradual rollout: raise the learned policy's share of traffic as its cohort proves itself.

Pure decision logic (no I/O). Every ``check_every`` requests the driver hands the
rewards of both cohorts seen since the last step to ``RolloutController.decide``:

* **step up** to the next fraction of ``steps`` when the learned cohort is
  non-inferior: the one-sided lower bound (at ``level``) of
  ``reward_rl − reward_baseline`` is above ``−margin``;
* **step back** one fraction when it is clearly worse: the one-sided upper bound
  is below ``−margin``;
* otherwise **hold** and keep collecting.

The top step stays below 1 by default so that a baseline holdout keeps measuring.

>>> ctl = RolloutController(steps=(0.1, 0.5), min_samples=3)
>>> ctl.decide([0.9, 0.8, 0.85, 0.9], [0.5, 0.6, 0.55, 0.5]).action
'up'
>>> ctl.fraction
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from policy_store.evaluation import Summary, welch_interval

DEFAULT_STEPS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class RolloutDecision:
    """What the controller decided and why."""

    action: str  # "up", "down" or "hold"
    fraction: float
    previous: float
    low: float
    high: float
    n_rl: int
    n_baseline: int
    reason: str


@dataclass
class RolloutController:
    """Walks up (or back down) a ladder of rollout fractions from measured rewards."""

    steps: Sequence[float] = DEFAULT_STEPS
    margin: float = 0.01
    level: float = 0.90
    min_samples: int = 20
    index: int = 0
    history: list[RolloutDecision] = field(default_factory=list)

    def __post_init__(self) -> None:
        steps = [float(s) for s in self.steps]
        if not steps or any(not 0.0 < s <= 1.0 for s in steps) or steps != sorted(steps):
            raise ValueError(f"steps must be increasing fractions in (0, 1], got {steps}")
        if not 0.5 < self.level < 1.0:
            raise ValueError(f"level must be in (0.5, 1), got {self.level}")
        self.steps = tuple(steps)

    @property
    def fraction(self) -> float:
        return self.steps[self.index]

    def decide(self, rl: Sequence[float], baseline: Sequence[float]) -> RolloutDecision:
        """Look at the rewards of each cohort since the last step and move (or not)."""
        prev = self.fraction
        n1, n0 = len(rl), len(baseline)
        if n1 < self.min_samples or n0 < self.min_samples:
            return self._record("hold", prev, float("nan"), float("nan"), n1, n0, "too few rewards")
        # a two-sided interval at 2·level − 1 has one-sided bounds at `level`
        diff = welch_interval(Summary.of(rl), Summary.of(baseline), level=2 * self.level - 1)
        if diff.low > -self.margin and self.index < len(self.steps) - 1:
            self.index += 1
            return self._record("up", prev, diff.low, diff.high, n1, n0, "non-inferior")
        if diff.high < -self.margin and self.index > 0:
            self.index -= 1
            return self._record("down", prev, diff.low, diff.high, n1, n0, "worse than baseline")
        reason = "at the top step" if diff.low > -self.margin else "not yet proven"
        return self._record("hold", prev, diff.low, diff.high, n1, n0, reason)

    def _record(self, action, prev, low, high, n1, n0, reason) -> RolloutDecision:
        d = RolloutDecision(action, self.fraction, prev, low, high, n1, n0, reason)
        self.history.append(d)
        return d
