"""Pure statistics for measured improvement: intervals, non-inferiority and off-policy
evaluation (IPS, SNIPS, doubly robust). numpy only, no I/O; the report and the
``rl-commons evaluate`` command (``stream_app.ops.report``) read the data and call these.

>>> from policy_store.evaluation import Summary, welch_interval
>>> welch_interval(Summary(100, 0.8, 0.01), Summary(100, 0.7, 0.01)).low > 0
True
"""

from ._ope import (
    LoggedData,
    OPEResult,
    dr,
    dr_difference,
    dr_terms,
    evaluate,
    ips,
    overlap_warning,
    policy_probabilities,
    reward_model,
    snips,
)
from ._stats import (
    Interval,
    Summary,
    betainc,
    bootstrap_interval,
    json_safe,
    mean_interval,
    non_inferior,
    norm_ppf,
    ratio_change,
    t_ppf,
    welch_interval,
)

__all__ = [
    "Interval",
    "LoggedData",
    "OPEResult",
    "Summary",
    "betainc",
    "bootstrap_interval",
    "dr",
    "dr_difference",
    "dr_terms",
    "evaluate",
    "ips",
    "json_safe",
    "mean_interval",
    "non_inferior",
    "norm_ppf",
    "overlap_warning",
    "policy_probabilities",
    "ratio_change",
    "reward_model",
    "snips",
    "t_ppf",
    "welch_interval",
]
