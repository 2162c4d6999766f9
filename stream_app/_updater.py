"""The updater: batches of rewards -> per-arm deltas -> the store's idempotent ``apply``.

Each reward becomes an ``Observation`` with its scalar reward and its component values
(``to_observations`` with the policy's ``RewardSpec``, read once per policy and batch), so
the store keeps per-component sums beside the reward sums. Under a constrained
objective the batch also moves the policy's multiplier λ, atomically with it: the step
is ``_dual.DualTracker``'s (the in-process learner's rule, on the current state).

Exactly-once effect: the engine holds the Kafka offsets of a batch until
``Updater.apply`` returned (``_engine``); ``apply`` is idempotent by decision_id, so a
batch replayed after a crash changes nothing it already changed. While the store is
unreachable ``apply`` raises ``StoreUnavailableError`` (the store translates its
client's errors) and the engine retries with backoff: nothing is committed and
nothing is dropped meanwhile.

Cohorts. Every cohort (``rl``, ``baseline``, ``shadow``) updates the learned policy
with weight 1 by default. The bandit keeps one ridge regression of reward on
features per arm, i.e. it models E[reward | x, arm]; conditioning on x makes the
estimate valid whichever policy chose the arm, so baseline and shadow traffic is
good data (and is usually the only data on arms the learned policy rarely picks).
Importance weights (1/propensity) are *not* applied to the regression: they would
only add variance without removing bias for this model. Propensities are kept on
every reward for off-policy evaluation (``stream_app.ops.report``). Pass
``cohort_weights`` to down-weight a cohort (0 keeps it out of the parameters; it
is still aggregated for the dashboard).

After each successful apply of a policy's rewards the updater hands an
``aggregates.AppliedBatch`` to its ``sink`` (if any): the dashboard's per-minute
aggregates and health counters and the ``freshness`` hash (``last_apply_ms``,
``last_apply_latency_ms`` and ``last_lag_ms``, the largest outcome-produced ->
applied delay in the batch). Aggregates count only rewards the store had not seen,
so replays do not double them (a crash between apply and this write can lose one
batch of them).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from policy_store import (
    InvalidDeltaError,
    Observation,
    PolicyStore,
    RewardSpec,
    UnknownArmError,
    UnknownPolicyError,
    component_values,
)
from producers import RewardEvent

from ._dual import DualTracker
from ._metrics import WorkerMetrics
from .aggregates import AggregateSink, AppliedBatch

log = logging.getLogger(__name__)

DEFAULT_COHORT_WEIGHTS: Mapping[str, float] = {"rl": 1.0, "baseline": 1.0, "shadow": 1.0}


def to_observations(
    rewards: Sequence[RewardEvent],
    cohort_weights: Mapping[str, float] = DEFAULT_COHORT_WEIGHTS,
    spec: RewardSpec | None = None,
) -> list[Observation]:
    """One ``Observation`` per reward with a positive cohort weight.

    With the policy's reward ``spec``, each observation carries the reward's component
    values (``policy_store.component_values`` of ``RewardEvent.components``, which are
    normalised already; missing ones take the spec's defaults, an error gives the error
    values). An expired reward (no outcome) carries the all-default values: the scalar
    reward is the spec's ``reward_on_expiry``, the components an approximation of it.
    """
    out = []
    for r in rewards:
        w = float(cohort_weights.get(r.cohort, 1.0))
        if w > 0:
            values = None
            if spec is not None:
                c = r.components
                values = component_values(
                    spec, c.quality, c.cost, c.latency, c.error, normalised=True
                )
            out.append(Observation(r.decision_id, r.arm, tuple(r.features), r.reward, w, values))
    return out


@dataclass
class BatchResult:
    """What one batch did across its policies."""

    applied: int = 0
    duplicates: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[RewardEvent, str, str]] = field(default_factory=list)  # reason, detail


class Updater:
    """Applies reward batches to a policy store (blocking; the engine's thread calls it).

    ``sink`` receives the dashboard's aggregates after each successful apply
    (``RedisAggregates`` beside a ``RedisPolicyStore``; None writes only the parameters).
    """

    def __init__(
        self,
        store: PolicyStore,
        metrics: WorkerMetrics | None = None,
        *,
        sink: AggregateSink | None = None,
        cohort_weights: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sink = sink
        self.metrics = metrics or WorkerMetrics()
        self.cohort_weights = dict(cohort_weights or DEFAULT_COHORT_WEIGHTS)
        self.dual = DualTracker(store)  # a constrained objective's multiplier step
        self._clock = clock

    def apply(self, rewards: Sequence[RewardEvent]) -> BatchResult:
        """Apply one batch; raises ``StoreUnavailableError`` if the store cannot be reached.

        Rewards the current config refuses (unknown policy or arm, wrong feature length,
        a contribution that would overflow) come back in ``BatchResult.rejected``.
        """
        result = BatchResult()
        by_policy: dict[str, list[RewardEvent]] = defaultdict(list)
        for r in rewards:
            by_policy[r.policy].append(r)
        for policy, items in by_policy.items():
            self._apply_policy(policy, items, result)
        if rewards:
            self.metrics.batch_size.observe(len(rewards))
        return result

    def _apply_policy(self, policy: str, items: list[RewardEvent], result: BatchResult) -> None:
        t0 = self._clock()
        try:
            head = self.store.head(policy)  # once per policy and batch
            obs = to_observations(items, self.cohort_weights, head.config.reward)
            res = self.store.apply(policy, obs, dual_delta=self.dual.delta(head, obs))
        except UnknownPolicyError as exc:
            result.rejected += [(r, "unknown_policy", str(exc)) for r in items]
            return
        except (UnknownArmError, InvalidDeltaError):
            cfg = self.store.get_config(policy)
            good = []
            for r in items:
                if r.arm not in cfg.arms:
                    result.rejected.append((r, "unknown_arm", f"arm {r.arm!r} not in {cfg.arms}"))
                elif len(r.features) != cfg.n_features:
                    result.rejected.append(
                        (r, "feature_length", f"{len(r.features)} != {cfg.n_features}")
                    )
                elif not _contribution_finite(r):
                    result.rejected.append(
                        (r, "out_of_range", "features or reward would overflow the statistics")
                    )
                else:
                    good.append(r)
            if len(good) == len(items):
                raise
            if good:
                self._apply_policy(policy, good, result)
            return
        now = self._clock()
        lags = [now - (r.outcome_ts if r.outcome_ts is not None else r.reward_ts) for r in items]
        if self.sink is not None:
            fresh: dict[str, RewardEvent] = {}
            for r in items:
                if r.decision_id not in res.already_applied:
                    fresh.setdefault(r.decision_id, r)
            batch = AppliedBatch(
                list(fresh.values()), res.applied, res.duplicates, now - t0, max(lags), now
            )
            self.sink.add_batch(policy, batch)
        m = self.metrics
        m.applied.inc(res.applied)
        if res.duplicates:
            m.duplicates.labels("rewards").inc(res.duplicates)
        m.apply_latency.observe(now - t0)
        m.last_apply.set(now)
        for lag in lags:
            m.freshness.observe(max(lag, 0.0))
        result.applied += res.applied
        result.duplicates += res.duplicates
        result.versions[policy] = res.version


def _contribution_finite(r: RewardEvent) -> bool:
    """Whether x·xᵀ and r·x of this reward are finite (huge finite features overflow)."""
    x = np.asarray(r.features, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.outer(x, x)).all() and np.isfinite(r.reward * x).all())
