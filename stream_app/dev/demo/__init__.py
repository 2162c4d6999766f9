"""``rl-commons demo``: the whole learning loop on one machine, with a report at the end."""

from ._curve import CurvePoint, plot_learning_curve, rolling_by_cohort, rolling_mean
from ._options import (
    CHANGES,
    CONSTRAINED_ROLLOUT,
    CONSTRAINED_WARMUP,
    OBJECTIVES,
    AlwaysProvider,
    DemoOptions,
    PriorityRule,
    demo_policy_config,
    size_defaults,
)
from ._rollout import DEFAULT_STEPS, RolloutController, RolloutDecision
from ._runner import Demo, DemoResult, run_demo
from ._watch import ChangeWatch

__all__ = [
    "CHANGES",
    "CONSTRAINED_ROLLOUT",
    "CONSTRAINED_WARMUP",
    "DEFAULT_STEPS",
    "OBJECTIVES",
    "AlwaysProvider",
    "ChangeWatch",
    "CurvePoint",
    "Demo",
    "DemoOptions",
    "DemoResult",
    "PriorityRule",
    "RolloutController",
    "RolloutDecision",
    "demo_policy_config",
    "plot_learning_curve",
    "rolling_by_cohort",
    "rolling_mean",
    "run_demo",
    "size_defaults",
]
