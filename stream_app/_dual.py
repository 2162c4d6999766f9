"""The worker's side of a constrained objective: each batch's step of the multiplier λ.

A policy with a constrained objective (``policy_store.Objective``: a quality floor or
a budget) has one Lagrange multiplier λ, stored with its state and moved atomically
with the statistics by ``PolicyStore.apply(..., dual_delta=...)``. ``DualTracker``
computes that delta for a batch about to be applied, with the rule the in-process
learner uses (``policy_store.policy_dual_delta``: the constraint's bound on the
current snapshot, then the projected subgradient step over the batch's component
values, weighted like the statistics).

The snapshot is the state the batch is applied to: the tracker keeps one per
constrained policy and rebuilds it (one ``read_state``, one ``build_snapshot``) only
when the head's version or config moved since, i.e. after any apply by this or
another worker. A policy with the weighted objective costs nothing: no snapshot is
read or kept and its delta is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policy_store import (
    Head,
    Observation,
    PolicyConfig,
    PolicyStore,
    Snapshot,
    build_snapshot,
    make_algorithm,
    policy_dual_delta,
)


@dataclass(frozen=True)
class _Cached:
    config: PolicyConfig
    snapshot: Snapshot


class DualTracker:
    """The multiplier's step per batch for every constrained policy of ``store``."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self._cache: dict[str, _Cached] = {}
        #: snapshots built (a state read each): for metrics and tests
        self.rebuilds = 0

    def delta(self, head: Head, observations: Sequence[Observation]) -> float:
        """λ's step for ``observations`` (a batch of ``head.config``'s policy, about to be
        applied) on the state ``head`` names: 0 for the weighted objective, for a batch
        without component values, and while the constraint has no target yet.

        Raises what the store raises when it cannot read the state (the caller's batch
        is retried like any apply)."""
        config = head.config
        if not config.objective.constrained:
            self._cache.pop(config.name, None)
            return 0.0
        values = [o.components for o in observations if o.components is not None]
        if not values:
            return 0.0
        weights = [o.weight for o in observations if o.components is not None]
        return policy_dual_delta(config, self._snapshot(head), values, weights)

    def _snapshot(self, head: Head) -> Snapshot:
        name = head.config.name
        cached = self._cache.get(name)
        if (
            cached is not None
            and cached.snapshot.version == head.version
            and (cached.config is head.config or cached.config == head.config)
        ):
            return cached.snapshot
        state = self.store.read_state(name)
        config = head.config
        snap = build_snapshot(make_algorithm(config.algorithm), config, state)
        self._cache[name] = _Cached(config, snap)
        self.rebuilds += 1
        return snap

    def forget(self, policy: str) -> None:
        """Drop a policy's snapshot (e.g. when it was deleted)."""
        self._cache.pop(policy, None)
