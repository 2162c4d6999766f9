"""Worker metrics: Prometheus counters (served at ``/metrics`` on the worker's web port)
and loop-health counters buffered per policy and flushed to an ``aggregates.AggregateSink``.

Prometheus names (each worker has its own registry, so several apps can live in one
process, e.g. in tests):

    rlc_events_in_total{topic}          messages read from decisions / outcomes / rewards
    rlc_joined_total                    decisions that met their first outcome part
    rlc_rewards_total                   rewards emitted by the join
    rlc_expired_total                   decisions whose window closed without an outcome
    rlc_orphaned_total                  outcomes whose decision never came
    rlc_late_total                      parts that came after their entry closed (also DLQ)
    rlc_duplicates_total{topic}         repeated decisions, outcome parts and rewards
    rlc_missing_total{component}        reward components filled in with the spec's default
    rlc_dlq_total{reason}               records sent to the DLQ
    rlc_applied_total                   observations added to the policy store
    rlc_batch_size                      rewards per updater batch (histogram)
    rlc_apply_latency_seconds           store apply + aggregates per batch (histogram)
    rlc_apply_retries_total             failed apply attempts (store unreachable)
    rlc_freshness_seconds               outcome produced -> parameters applied (histogram)
    rlc_last_apply_timestamp_seconds    wall clock of the last successful apply
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import Counter as PromCounter

if TYPE_CHECKING:
    from .aggregates import AggregateSink

__all__ = ["CONTENT_TYPE_LATEST", "HealthBuffer", "WorkerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 60.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class WorkerMetrics:
    """The Prometheus metrics of one worker, in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = PromCounter("rlc_events_in", "Messages read.", ["topic"], registry=r)
        self.joined = PromCounter("rlc_joined", "Decisions joined with an outcome.", registry=r)
        self.rewards = PromCounter("rlc_rewards", "Rewards emitted by the join.", registry=r)
        self.expired = PromCounter("rlc_expired", "Decisions expired unmatched.", registry=r)
        self.orphaned = PromCounter("rlc_orphaned", "Outcomes never matched.", registry=r)
        self.late = PromCounter("rlc_late", "Parts after their entry closed.", registry=r)
        self.duplicates = PromCounter(
            "rlc_duplicates", "Repeated messages ignored.", ["topic"], registry=r
        )
        self.missing = PromCounter(
            "rlc_missing", "Components defaulted.", ["component"], registry=r
        )
        self.clipped = PromCounter(
            "rlc_clipped",
            "Components outside [0, 1] after the policy's caps (wrong units?), clipped.",
            ["component"],
            registry=r,
        )
        self.dlq = PromCounter("rlc_dlq", "Records sent to the DLQ.", ["reason"], registry=r)
        self.applied = PromCounter("rlc_applied", "Observations applied.", registry=r)
        self.apply_retries = PromCounter(
            "rlc_apply_retries", "Failed apply attempts (store unreachable).", registry=r
        )
        self.batch_size = Histogram(
            "rlc_batch_size", "Rewards per batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.apply_latency = Histogram(
            "rlc_apply_latency_seconds",
            "Apply time per batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "rlc_freshness_seconds",
            "Outcome produced to parameters applied.",
            buckets=_FRESHNESS_BUCKETS,
            registry=r,
        )
        self.last_apply = Gauge(
            "rlc_last_apply_timestamp_seconds", "Last successful apply.", registry=r
        )

    def count_join(self, counters: Mapping[str, int], topic: str) -> None:
        """Add the counters of one join step (names as in ``_join.Step.counters``)."""
        for name, n in counters.items():
            if not n:
                continue
            if name == "joined":
                self.joined.inc(n)
            elif name == "rewards":
                self.rewards.inc(n)
            elif name == "expired":
                self.expired.inc(n)
            elif name == "orphaned":
                self.orphaned.inc(n)
            elif name == "late":
                self.late.inc(n)
            elif name == "duplicates":
                self.duplicates.labels(topic).inc(n)
            elif name.startswith("missing:"):
                self.missing.labels(name.split(":", 1)[1]).inc(n)
            elif name.startswith("clipped:"):
                self.clipped.labels(name.split(":", 1)[1]).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthBuffer:
    """Loop-health counters per policy, kept in memory and flushed to Redis in one pipeline.

    The join never waits on Redis per event: it adds here, and a timer calls ``flush``.
    Counters are observability data: a crash loses at most one flush interval.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter] = defaultdict(Counter)

    def add(self, policy: str | None, counters: Mapping[str, int]) -> None:
        if not policy or not counters:
            return
        with self._lock:
            self._counts[policy].update({k: v for k, v in counters.items() if v})

    def take(self) -> dict[str, Counter]:
        with self._lock:
            out, self._counts = self._counts, defaultdict(Counter)
        return out

    def flush(self, sink: AggregateSink) -> int:
        """Hand the buffered counters to ``sink``; on failure keep them. Returns policies."""
        pending = self.take()
        if not pending:
            return 0
        try:
            sink.add_health(pending)
        except Exception:
            for policy, counts in pending.items():
                self.add(policy, counts)
            raise
        return len(pending)
