"""Measured improvement: the learned-vs-baseline cohort report and off-policy evaluation.

Pure statistics in ``_stats``, ``_ope`` and ``_report``; reading rewards from Kafka or
Redis in ``_source``; the optional PNG in ``_plot`` (matplotlib, imported lazily).

>>> from stream_app.evaluation import build_report
>>> report = build_report(rewards, margin=0.01)          # doctest: +SKIP
>>> print(report.to_text()); report.plot("report.png")   # doctest: +SKIP
"""

from ._evaluate import PolicyEvaluation, candidate_config, evaluate_policy
from ._ope import LoggedData, OPEResult, evaluate, policy_probabilities
from ._plot import PlotUnavailableError
from ._report import CohortReport, MetricComparison, build_report, build_report_from_aggregates
from ._source import EvaluationSourceError, ReadStats, read_aggregates, read_rewards
from ._stats import (
    Interval,
    Summary,
    bootstrap_interval,
    non_inferior,
    ratio_change,
    welch_interval,
)

__all__ = [
    "CohortReport",
    "EvaluationSourceError",
    "Interval",
    "LoggedData",
    "MetricComparison",
    "OPEResult",
    "PlotUnavailableError",
    "PolicyEvaluation",
    "ReadStats",
    "Summary",
    "bootstrap_interval",
    "build_report",
    "build_report_from_aggregates",
    "candidate_config",
    "evaluate",
    "evaluate_policy",
    "non_inferior",
    "policy_probabilities",
    "ratio_change",
    "read_aggregates",
    "read_rewards",
    "welch_interval",
]
