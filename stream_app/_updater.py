"""The updater: batches of rewards -> per-arm deltas -> the store's idempotent ``apply``.

Each reward becomes an ``Observation`` with its scalar reward and its component values
(``to_observations`` with the policy's ``RewardSpec``, read once per policy and batch), so
the store keeps per-component sums beside the reward sums. Under a constrained
objective the batch also moves the policy's multiplier λ, atomically with it: the step
is ``_dual.DualTracker``'s (the in-process learner's rule, one outcome after the other).

Exactly-once effect: the engine holds the Kafka offsets of a batch until
``Updater.apply`` returned (``_engine``) and passes each reward's position in the
rewards topic (partition, offset); the store skips what is at or below its partition's
watermark (stored atomically with the state) and re-sent copies of a reward within
``dedupe_window`` seconds of stream time, so a batch replayed after a crash changes
nothing it already changed and the bookkeeping does not grow with the history. While
the store is unreachable (or out of memory) ``apply`` raises ``StoreUnavailableError``
(the store translates its client's errors) and the engine retries with backoff: nothing
is committed and nothing is dropped meanwhile.

No poison pill: a batch the store refuses (``InvalidDeltaError``: a reward of the wrong
dimension for the config the store holds now, or sums that would not be finite;
``UnknownArmError``) is split: rewards that fail a check of their own are rejected, and
when none does the batch is halved until the rewards that cannot be applied are alone;
they come back in ``BatchResult.rejected`` (the engine sends them to the DLQ) and
everything else is applied, in offset order. Any other error the store answers with
(``StoreError``, not ``StoreUnavailableError``) is raised for the engine to retry with
backoff, ``max_tries`` times in a row for a policy; the next time that policy's batch
is split the same way and what still fails is rejected, so a partition never waits
longer than those tries.

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
from typing import Protocol

import numpy as np

from policy_store import (
    Head,
    InvalidDeltaError,
    Observation,
    PolicyStore,
    RewardSpec,
    StoreError,
    StoreUnavailableError,
    UnknownArmError,
    UnknownPolicyError,
    component_values,
)
from producers import RewardEvent

from ._dual import DualTracker
from ._join import TOMBSTONE_SECONDS
from ._metrics import WorkerMetrics
from .aggregates import AggregateSink, AppliedBatch

log = logging.getLogger(__name__)

DEFAULT_COHORT_WEIGHTS: Mapping[str, float] = {"rl": 1.0, "baseline": 1.0, "shadow": 1.0}


#: added to the tombstone time for the dedupe window: clock skew between workers, sweeps
DEDUPE_MARGIN = 60.0
#: the dedupe window when none is given: the join's default tombstone time plus the margin
DEFAULT_DEDUPE_WINDOW = TOMBSTONE_SECONDS + DEDUPE_MARGIN

Position = tuple[int, int]  # (rewards partition, offset)
_Item = tuple[RewardEvent, Position | None]


def to_observations(
    rewards: Sequence[RewardEvent],
    cohort_weights: Mapping[str, float] = DEFAULT_COHORT_WEIGHTS,
    spec: RewardSpec | None = None,
    positions: Sequence[Position] | None = None,
) -> list[Observation]:
    """One ``Observation`` per reward with a positive cohort weight.

    ``positions`` (aligned with ``rewards``) are where the rewards were read in the
    rewards topic; each observation then carries ``(partition, offset, reward_ts)``.

    With the policy's reward ``spec``, each observation carries the reward's component
    values (``policy_store.component_values`` of ``RewardEvent.components``, which are
    normalised already; missing ones take the spec's defaults, an error gives the error
    values). An expired reward (no outcome) carries the all-default values: the scalar
    reward is the spec's ``reward_on_expiry``, the components an approximation of it.
    """
    out = []
    for i, r in enumerate(rewards):
        w = float(cohort_weights.get(r.cohort, 1.0))
        if w > 0:
            values = None
            if spec is not None:
                c = r.components
                values = component_values(
                    spec, c.quality, c.cost, c.latency, c.error, normalised=True
                )
            pos = None
            if positions is not None:
                pos = (positions[i][0], positions[i][1], r.reward_ts)
            out.append(
                Observation(r.decision_id, r.arm, tuple(r.features), r.reward, w, values, pos)
            )
    return out


class VersionGuard(Protocol):
    """What the updater tells about the versions it reads and writes (``ConfigCache``)."""

    def behind(self, name: str, head: Head) -> str | None: ...

    def saw(self, name: str, epoch: str | None, version: int) -> None: ...


@dataclass
class BatchResult:
    """What one batch did across its policies."""

    applied: int = 0
    duplicates: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[RewardEvent, str, str]] = field(default_factory=list)  # reason, detail
    #: rewards of policies whose config was lost (a wiped Redis): kept, not applied, not
    #: rejected; policy -> why (the engine holds them uncommitted until it returns)
    held: list[RewardEvent] = field(default_factory=list)
    held_policies: dict[str, str] = field(default_factory=dict)


class Updater:
    """Applies reward batches to a policy store (blocking; the engine's thread calls it).

    ``sink`` receives the dashboard's aggregates after each successful apply
    (``RedisAggregates`` beside a ``RedisPolicyStore``; None writes only the parameters).
    ``dedupe_window`` is how long (s of stream time) re-sent copies of a reward are
    recognised: at least the join's tombstone time, plus a margin. ``max_tries`` bounds
    how often in a row a policy's batch is retried after an unexpected store error
    before it is split and what cannot be applied is rejected. ``lost(policy)`` says why
    a policy the store does not know was lost rather than deleted (a wiped Redis: the
    worker's config cache knew it and no deletion was recorded), or None; its rewards are
    then held (``BatchResult.held``) instead of rejected as ``unknown_policy``, and
    ``waiting(policy)`` (a dictionary look-up unless the policy is held) keeps holding
    them until its config is back and no rebuild of it runs. ``versions`` (the worker's
    ``ConfigCache``) is told every head read and version written; ``versions.behind``
    holds a policy whose version went down within its epoch (an older Redis snapshot).
    """

    def __init__(
        self,
        store: PolicyStore,
        metrics: WorkerMetrics | None = None,
        *,
        sink: AggregateSink | None = None,
        cohort_weights: Mapping[str, float] | None = None,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
        max_tries: int = 5,
        clock: Callable[[], float] = time.time,
        lost: Callable[[str], str | None] | None = None,
        waiting: Callable[[str], str | None] | None = None,
        versions: VersionGuard | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.metrics = metrics or WorkerMetrics()
        self.cohort_weights = dict(cohort_weights or DEFAULT_COHORT_WEIGHTS)
        self.dual = DualTracker(store)  # a constrained objective's multiplier step
        self.dedupe_window = dedupe_window
        self.max_tries = max_tries
        self._failures: dict[str, int] = {}
        self._clock = clock
        self.lost = lost
        self.waiting = waiting
        self.versions = versions

    def apply(
        self, rewards: Sequence[RewardEvent], positions: Sequence[Position] | None = None
    ) -> BatchResult:
        """Apply one batch; raises ``StoreUnavailableError`` if the store cannot be reached.

        ``positions`` (aligned with ``rewards``) are the rewards' (partition, offset) in the
        rewards topic, in the order they were read; without them the store dedupes by
        decision_id alone. Rewards that cannot be applied (unknown policy or arm, wrong
        feature length, a contribution that would overflow the statistics) come back in
        ``BatchResult.rejected``; the rest is applied.
        """
        result = BatchResult()
        by_policy: dict[str, list[_Item]] = defaultdict(list)
        for i, r in enumerate(rewards):
            by_policy[r.policy].append((r, positions[i] if positions is not None else None))
        for policy, items in by_policy.items():
            self._apply_policy(policy, items, result)
        if rewards:
            self.metrics.batch_size.observe(len(rewards))
        return result

    def _learned(self, rewards: Sequence[RewardEvent]) -> list[bool]:
        """Which observations (one per reward with a positive cohort weight, in order) are
        of the ``rl`` cohort: only what the learned policy served moves the multiplier
        (baseline and shadow traffic is served by the baseline; it still updates the
        statistics and the evidence the constraint's bound is computed on)."""
        return [r.cohort == "rl" for r in rewards if self.cohort_weights.get(r.cohort, 1.0) > 0]

    def _apply_policy(
        self, policy: str, items: list[_Item], result: BatchResult, isolating: bool = False
    ) -> None:
        t0 = self._clock()
        rewards = [r for r, _ in items]
        positions = [p for _, p in items] if items and items[0][1] is not None else None
        why = self.waiting(policy) if self.waiting is not None else None
        if why is not None:  # lost before and not restored yet (or being rebuilt)
            result.held += rewards
            result.held_policies[policy] = why
            return
        try:
            head = self.store.head(policy)  # once per policy and batch
            if self.versions is not None and (why := self.versions.behind(policy, head)):
                result.held += rewards
                result.held_policies[policy] = why
                return
            obs = to_observations(rewards, self.cohort_weights, head.config.reward, positions)  # type: ignore[arg-type]
            res = self.store.apply(
                policy,
                obs,
                dedupe_window=self.dedupe_window,
                dual_delta=self.dual.delta(head, obs, self._learned(rewards)),
            )
            self.dual.applied(policy, res.version, res.applied == len(obs))
        except UnknownPolicyError as exc:
            why = self.lost(policy) if self.lost is not None else None
            if why is not None:  # a wiped Redis, not a deletion: the rewards wait
                result.held += rewards
                result.held_policies[policy] = why
            else:
                result.rejected += [(r, "unknown_policy", str(exc)) for r in rewards]
            return
        except (UnknownArmError, InvalidDeltaError) as exc:
            self._isolate(policy, items, result, exc)
            return
        except StoreUnavailableError:
            raise
        except StoreError as exc:  # unexpected: retried by the engine, a bounded number of times
            tries = self._failures.get(policy, 0) + 1
            if not isolating and tries < self.max_tries:
                self._failures[policy] = tries
                raise
            self._failures.pop(policy, None)
            self._isolate(policy, items, result, exc)
            return
        self._failures.pop(policy, None)
        now = self._clock()
        lags = [now - (r.outcome_ts if r.outcome_ts is not None else r.reward_ts) for r in rewards]
        if self.sink is not None:
            fresh: dict[str, RewardEvent] = {}
            for r in rewards:
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
        if self.versions is not None:
            self.versions.saw(policy, head.epoch, res.version)

    def _isolate(
        self, policy: str, items: list[_Item], result: BatchResult, exc: Exception
    ) -> None:
        """The store refused the batch: reject the rewards that fail a check of their own
        against the config it holds now, apply the rest; when none fails one, halve the
        batch (in order) until the rewards that cannot be applied are alone."""
        try:
            cfg = self.store.get_config(policy)
        except UnknownPolicyError as gone:
            result.rejected += [(r, "unknown_policy", str(gone)) for r, _ in items]
            return
        good: list[_Item] = []
        for item in items:
            r = item[0]
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
                good.append(item)
        if len(good) < len(items):
            if good:
                self._apply_policy(policy, good, result, isolating=True)
        elif len(items) == 1:
            r = items[0][0]
            result.rejected.append((r, "out_of_range", f"the store refused it alone: {exc}"))
            log.warning("reward %s of policy %r cannot be applied: %s", r.decision_id, policy, exc)
        else:
            half = len(items) // 2
            self._apply_policy(policy, items[:half], result, isolating=True)
            self._apply_policy(policy, items[half:], result, isolating=True)


def _contribution_finite(r: RewardEvent) -> bool:
    """Whether x·xᵀ and r·x of this reward are finite (huge finite features overflow)."""
    x = np.asarray(r.features, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.outer(x, x)).all() and np.isfinite(r.reward * x).all())
