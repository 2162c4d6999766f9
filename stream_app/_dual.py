"""The worker's side of a constrained objective: each batch's step of the multiplier λ.

A policy with a constrained objective (``policy_store.Objective``: a quality floor or
a budget) has one Lagrange multiplier λ, stored with its state and moved atomically
with the statistics by ``PolicyStore.apply(..., dual_delta=...)``. ``DualTracker``
computes that delta for a batch about to be applied with the in-process learner's rule
(``policy_store.DualSteps``): the batch's outcomes step λ one after the other, each at
the constraint's bound of the evidence before it (the state the batch is applied to,
with the batch's earlier outcomes folded in at every 1 % of growth), so a batch moves λ
as the same outcomes learnt one by one in-process would.

The tracker keeps one ``DualSteps`` per constrained policy. After an apply of the whole
batch it stands at the version the store answered, so the next batch needs no read of
the state; it reads the state (one ``read_state``, one ``build_snapshot``) only when the
head is at another version (another worker applied, an apply failed or skipped
duplicates) or the config changed. A policy with
the weighted objective costs nothing: no state is read or kept and its delta is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from policy_store import (
    DualSteps,
    Head,
    Observation,
    PolicyStore,
    build_snapshot,
    make_algorithm,
)


class DualTracker:
    """The multiplier's step per batch for every constrained policy of ``store``."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self._steps: dict[str, DualSteps] = {}
        #: states read (a snapshot built each): for metrics and tests
        self.rebuilds = 0

    def delta(
        self,
        head: Head,
        observations: Sequence[Observation],
        learned: Sequence[bool] | None = None,
    ) -> float:
        """λ's step for ``observations`` (a batch of ``head.config``'s policy, about to be
        applied, in order) on the state ``head`` names; ``learned`` marks the ones served by
        the learned policy (only they step λ; all by default). 0 for the weighted
        objective, for a batch without component values, and while the constraint has no
        target yet. Call ``applied`` once the batch is applied.

        Raises what the store raises when it cannot read the state (the caller's batch
        is retried like any apply)."""
        config = head.config
        name = config.name
        if not config.objective.constrained:
            self._steps.pop(name, None)
            return 0.0
        if all(o.components is None for o in observations):
            return 0.0
        steps = self._steps.get(name)
        if steps is None or steps.version != head.version or steps.stale(config):
            state = self.store.read_state(name)
            snap = build_snapshot(make_algorithm(config.algorithm), config, state)
            steps = self._steps[name] = DualSteps(config, snap, state)
            self.rebuilds += 1
        delta = steps.step(observations, learned)
        steps.version = -1  # unknown until ``applied`` says where the store stands
        return delta

    def applied(self, policy: str, version: int, complete: bool) -> None:
        """The last batch of ``policy`` was applied, now at ``version``; ``complete``: all
        of it (no duplicate skipped), so the tracked evidence is the store's."""
        steps = self._steps.get(policy)
        if steps is not None:
            if complete:
                steps.version = version
            else:
                del self._steps[policy]

    def forget(self, policy: str) -> None:
        """Drop a policy's steps (e.g. when it was deleted)."""
        self._steps.pop(policy, None)
