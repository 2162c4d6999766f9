"""``SafeProviderSelector``: gradual rollout of the learned policy next to a baseline.

The selection flow is ``ProviderSelector``'s (see its module docstring); this class
only gives it a rollout step (``Rollout``): for each request the learned policy
was allowed to serve,

1. shadow mode (``shadow=True``) → the baseline serves every request and the
   learned policy's choice is logged beside it (cohort ``shadow``);
2. otherwise the request key (user or session id) is hashed with BLAKE2b, salted
   with the policy name, into u ∈ [0, 1): u < ``rollout_fraction`` → the learned
   policy serves (cohort ``rl``), else the baseline (cohort ``baseline``, with the
   learned choice logged). The same key always lands in the same cohort.

The baseline also serves where a plain selector serves the policy's fallback arm
(kill switch, stale parameters) or its first provider (policy never loaded).

Rollout fraction, kill switch and shadow flag are read from the policy config on
every request; in streaming mode the ``PolicyReader`` refreshes it every
``poll_interval`` (0.1 s by default), so a change in Redis applies within a second.

Propensity of a baseline decision: the baseline is treated as a deterministic
policy of the request, so the served arm has propensity 1.0 under it;
``learned_propensity`` is the learned policy's probability of that same arm.
The baseline never raises into the caller: if it fails, the policy's
``fallback_arm`` (``baseline_arm`` or the first arm) is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policy_store import PolicyConfig

from ._rollout import Baseline, Rollout
from ._selector import ProviderSelector


class SafeProviderSelector(ProviderSelector):
    """``ProviderSelector`` that serves the learned policy to ``rollout_fraction`` of keys.

    ``exploration_rate`` is the rollout fraction of an in-process policy; in
    streaming mode the policy config in Redis decides (``rl-commons`` or the
    dashboard change it live). ``baseline`` is any object with
    ``select_provider(request) -> str`` (default: the policy's ``fallback_arm``).
    """

    def __init__(
        self,
        exploration_rate: float = 0.1,
        baseline: Baseline | None = None,
        providers: Sequence[str] | None = None,
        feature_fn: Any = None,
        reward_spec: Any = None,
        algorithm: Any = None,
        seed: Any = None,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= float(exploration_rate) <= 1.0:
            raise ValueError(f"exploration_rate must be within [0, 1], got {exploration_rate}")
        self.exploration_rate = float(exploration_rate)
        self.baseline = baseline
        super().__init__(providers, feature_fn, reward_spec, algorithm, seed, **kwargs)

    def _make_rollout(self) -> Rollout:
        return Rollout(self.baseline)

    def _in_process_rollout_fraction(self) -> float:
        return self.exploration_rate

    @property
    def baseline_errors(self) -> int:
        """Times the baseline raised (the policy's fallback arm served instead)."""
        return self._rollout.errors

    def update_config(self, **changes: Any) -> PolicyConfig:
        """In-process only: change rollout_fraction / enabled / shadow now.

        In streaming mode the config lives in Redis: ``TypeError``.
        """
        return self._source.update_config(**changes)
