"""Operator tools around the worker: the ``rl-commons`` command line (``cli``), the
dashboard (``dashboard``), ``inspect`` (``read_policy_report``: one policy's state, health and
recent rewards from Redis) and the cohort report and off-policy evaluation of logged
rewards (``report``). They read Redis and Kafka; the worker does not import them.
"""

from ._inspect import (
    ArmRow,
    CohortRow,
    Health,
    PolicyReport,
    build_policy_report,
    read_policy_report,
)

__all__ = [
    "ArmRow",
    "CohortRow",
    "Health",
    "PolicyReport",
    "build_policy_report",
    "read_policy_report",
]
