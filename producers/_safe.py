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

Selection never raises into the caller either: a feature function that fails or
returns a vector of the wrong length or with non-finite values (``FeatureError``),
or any other error in the selection flow, serves the baseline (else the fallback arm,
else the first of ``providers``), unlogged, counted in ``feature_errors`` or
``select_errors`` (and in ``fallbacks`` and ``unlogged``); the first error of each
kind is logged at WARNING, the rest at DEBUG. The one exception: nothing at all to
serve (no baseline, no ``providers``, policy never loaded) re-raises the error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from policy_store import PolicyConfig

from ._decision import Decision, new_decision_id
from ._features import FeatureError
from ._rollout import Baseline, Rollout
from ._selector import ProviderSelector

log = logging.getLogger(__name__)


class SafeProviderSelector(ProviderSelector):
    """``ProviderSelector`` that serves the learned policy to ``rollout_fraction`` of keys.

    ``exploration_rate`` is the rollout fraction of an in-process policy; in
    streaming mode the policy config in Redis decides (``rl-commons`` or the
    dashboard change it live). ``baseline`` is any callable ``request -> provider``
    or any object with ``select_provider(request) -> str`` (default: the policy's
    ``fallback_arm``). ``select`` never raises: on any error it serves the baseline
    and counts it (``feature_errors``, ``select_errors``).
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
        self.feature_errors = 0
        self.select_errors = 0
        super().__init__(providers, feature_fn, reward_spec, algorithm, seed, **kwargs)

    def _make_rollout(self) -> Rollout:
        return Rollout(self.baseline)

    def _in_process_rollout_fraction(self) -> float:
        return self.exploration_rate

    def _select_failed(self, request: Mapping[str, Any], exc: Exception) -> Decision:
        """Serve the baseline, unlogged, and count why the learned policy could not."""
        config = self.config
        if config is not None:
            fallback: str | None = config.fallback_arm
        else:
            fallback = self.providers[0] if self.providers else None
        arm = self._baseline_arm(request, fallback)
        if arm is None:  # nothing at all to serve: the setup error must be seen
            raise exc
        kind = "feature_errors" if isinstance(exc, FeatureError) else "select_errors"
        count = getattr(self, kind) + 1
        setattr(self, kind, count)
        self.fallbacks += 1
        self.unlogged += 1
        log.log(
            logging.WARNING if count == 1 else logging.DEBUG,
            "policy %r: selection failed (%s: %s); serving the baseline %r (counted in %s; "
            "further errors are logged at DEBUG)",
            self.policy,
            type(exc).__name__,
            exc,
            arm,
            kind,
        )
        version = self._reader.version if self._reader is not None else None
        return Decision(new_decision_id(), arm, 1.0, "baseline", version or 0, (), None, False)

    def metrics(self) -> dict[str, Any]:
        """``ProviderSelector.metrics`` plus the baseline's and selection's error counts."""
        out = super().metrics()
        out["baseline_errors"] = self.baseline_errors
        out["feature_errors"] = self.feature_errors
        out["select_errors"] = self.select_errors
        return out

    @property
    def baseline_errors(self) -> int:
        """Times the baseline raised (the policy's fallback arm served instead)."""
        return self._rollout.errors

    def update_config(self, **changes: Any) -> PolicyConfig:
        """In-process only: change rollout_fraction / enabled / shadow now.

        In streaming mode the config lives in Redis: ``TypeError``.
        """
        return self._source.update_config(**changes)
