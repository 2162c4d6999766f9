"""Measured improvement: the learned-vs-baseline cohort report and off-policy evaluation
of a policy on logged rewards.

The statistics (intervals, non-inferiority, IPS/SNIPS/DR) are pure functions in
``policy_store.evaluation``; here: assembling the report (``_report``), evaluating a
candidate config on logged rewards (``_evaluate``), reading rewards from Kafka or the
aggregates from Redis (``_source``), the constraint section for a policy's objective
(``_constraint``: ``with_constraint``) and the optional PNG (``_plot``, matplotlib imported
lazily).

>>> from stream_app.ops.report import build_report
>>> report = build_report(rewards, margin=0.01)          # doctest: +SKIP
>>> print(report.to_text()); report.plot("report.png")   # doctest: +SKIP
"""

from ._constraint import ConstraintCheck, check_constraint, with_constraint
from ._evaluate import PolicyEvaluation, candidate_config, evaluate_policy
from ._plot import PlotUnavailableError
from ._report import CohortReport, MetricComparison, build_report, build_report_from_aggregates
from ._source import EvaluationSourceError, ReadStats, read_aggregates, read_rewards

__all__ = [
    "CohortReport",
    "ConstraintCheck",
    "EvaluationSourceError",
    "MetricComparison",
    "PlotUnavailableError",
    "PolicyEvaluation",
    "ReadStats",
    "build_report",
    "build_report_from_aggregates",
    "candidate_config",
    "check_constraint",
    "evaluate_policy",
    "read_aggregates",
    "read_rewards",
    "with_constraint",
]
