"""``RLTracker``: prometheus metrics of a policy, per arm, that a proxy can expose.

Metric families (``policy`` label = the tracker's name):

    rlc_decisions_total{policy, kind, value}   log_decision(kind, value), e.g. ("provider", "llama")
    rlc_reward{policy, arm}                     histogram of log_reward(reward, arm=…)
    rlc_reward_last{policy, arm}                last reward seen
    rlc_metric{policy, arm, name}               gauges set by log_metrics({...}, arm=…)

Pass ``registry=CollectorRegistry()`` to keep instances apart (tests, several
trackers); by default the process-wide registry is used, and metrics already
registered there by another tracker are shared.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_REWARD_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, float("inf"))
_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()


def _families(registry: CollectorRegistry) -> dict[str, Any]:
    """One set of metric families per registry (prometheus refuses duplicates)."""
    fams = _SHARED.get(registry)
    if fams is None:
        fams = {
            "decisions": Counter(
                "rlc_decisions",
                "Decisions logged, by kind and value.",
                ["policy", "kind", "value"],
                registry=registry,
            ),
            "reward": Histogram(
                "rlc_reward",
                "Rewards observed, by arm.",
                ["policy", "arm"],
                buckets=_REWARD_BUCKETS,
                registry=registry,
            ),
            "reward_last": Gauge(
                "rlc_reward_last",
                "Last reward observed, by arm.",
                ["policy", "arm"],
                registry=registry,
            ),
            "metric": Gauge(
                "rlc_metric",
                "Named metrics logged with log_metrics, by arm.",
                ["policy", "arm", "name"],
                registry=registry,
            ),
        }
        _SHARED[registry] = fams
    return fams


class RLTracker:
    """Track decisions, rewards and named metrics of the policy ``name``.

    >>> from prometheus_client import CollectorRegistry
    >>> reg = CollectorRegistry()
    >>> t = RLTracker("provider_selection", registry=reg)
    >>> t.log_decision("provider", "llama")
    >>> t.log_reward(0.8, arm="llama")
    >>> reg.get_sample_value("rlc_decisions_total",
    ...     {"policy": "provider_selection", "kind": "provider", "value": "llama"})
    1.0
    """

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self.registry = registry if registry is not None else REGISTRY
        self._m = _families(self.registry)

    def log_decision(self, kind: str, value: Any) -> None:
        """Count one decision of ``kind`` (e.g. "provider", "cohort") with ``value``."""
        self._m["decisions"].labels(self.name, str(kind), str(value)).inc()

    def log_reward(self, reward: float, arm: str = "all") -> None:
        """Observe a reward (for ``arm``; "all" when not given). Non-finite values are refused."""
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be a finite number, got {reward}")
        self._m["reward"].labels(self.name, arm).observe(reward)
        self._m["reward_last"].labels(self.name, arm).set(reward)

    def log_metrics(self, metrics: Mapping[str, Any], arm: str = "all") -> None:
        """Set one gauge per numeric entry of ``metrics`` (others are skipped)."""
        gauge = self._m["metric"]
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                gauge.labels(self.name, arm, str(key)).set(float(value))
