"""Measured improvement: the learned-vs-baseline cohort report and off-policy evaluation.

Pure statistics in ``_stats``, ``_ope`` and ``_report``; reading rewards from Kafka or
Redis in ``_source``.
"""

from ._ope import LoggedData, OPEResult, evaluate, policy_probabilities
from ._stats import (
    Interval,
    Summary,
    bootstrap_interval,
    non_inferior,
    ratio_change,
    welch_interval,
)

__all__ = [
    "Interval",
    "LoggedData",
    "OPEResult",
    "Summary",
    "bootstrap_interval",
    "evaluate",
    "non_inferior",
    "policy_probabilities",
    "ratio_change",
    "welch_interval",
]
