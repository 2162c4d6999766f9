"""``SafeProviderSelector``: gradual rollout of the learned policy next to a baseline.

For each request:

1. No policy loaded, kill switch off (``enabled=False``) or parameters older than
   ``max_staleness_seconds`` → the baseline serves (cohort ``baseline``).
2. Shadow mode (``shadow=True``) → the baseline serves every request and the
   learned policy's choice is logged beside it (cohort ``shadow``).
3. Otherwise the request key (user or session id) is hashed with BLAKE2b, salted
   with the policy name, into u ∈ [0, 1): u < ``rollout_fraction`` → the learned
   policy serves (cohort ``rl``), else the baseline (cohort ``baseline``, with the
   learned choice logged). The same key always lands in the same cohort.

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

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ._selector import Decision, ProviderSelector, new_decision_id

log = logging.getLogger(__name__)

_SCALE = float(1 << 64)


class Baseline(Protocol):
    def select_provider(self, request: Mapping[str, Any]) -> str: ...


class FixedBaseline:
    """A baseline that always serves one provider."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def select_provider(self, request: Mapping[str, Any]) -> str:
        return self.provider


def cohort_position(key: str, salt: str = "") -> float:
    """Sticky position of a request key in [0, 1): BLAKE2b(salt, key) as a fraction.

    >>> cohort_position("user-42", "p") == cohort_position("user-42", "p")
    True
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


def request_key_of(request: Mapping[str, Any]) -> str | None:
    """The request's sticky key: ``user_id``, else ``session_id``, else None."""
    key = request.get("user_id") or request.get("session_id")
    return None if key is None else str(key)


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
        self.baseline_errors = 0
        super().__init__(providers, feature_fn, reward_spec, algorithm, seed, **kwargs)

    def _local_config_overrides(self) -> dict[str, Any]:
        return {"rollout_fraction": self.exploration_rate}

    def update_config(self, **changes: Any) -> Any:
        """In-process only: change rollout_fraction / enabled / shadow now."""
        src = self._source({})
        if not hasattr(src, "update_config"):
            raise TypeError(
                "in streaming mode the config lives in Redis: change it with the store's "
                "update_config or `rl-commons policy`"
            )
        return src.update_config(**changes)

    def _baseline_arm(self, request: Mapping[str, Any], fallback: str) -> str:
        if self.baseline is None:
            return fallback
        try:
            return str(self.baseline.select_provider(request))
        except Exception as exc:  # fail open: the baseline must not fail the request
            self.baseline_errors += 1
            log.warning("baseline failed (%s); serving %s", exc, fallback)
            return fallback

    def select(self, request: Mapping[str, Any], request_key: str | None = None) -> Decision:
        """Serve the learned policy or the baseline (see the module docstring); log both."""
        src = self._source(request)
        view = src.view
        if view is None:
            return self._baseline_unlogged(request)
        config = view.config
        snap = view.snapshot
        x = self.features(request, snap.d)
        stale = src.staleness() > config.max_staleness_seconds
        if not config.enabled or stale:
            if stale:
                self.fallbacks += 1
            arm = self._baseline_arm(request, config.fallback_arm)
            return self._baseline_decision(view, x, arm, "baseline", None, None)
        learned_arm, learned_p, probs = self._learned(view, x)
        if not config.shadow:
            key = request_key or request_key_of(request)
            u = cohort_position(key, config.name) if key is not None else self._rng.random()
            if u < config.rollout_fraction:
                return self._decide(view, x, learned_arm, learned_p, "rl", None, None)
        cohort = "shadow" if config.shadow else "baseline"
        arm = self._baseline_arm(request, config.fallback_arm)
        i = snap.index.get(arm)
        lp = float(probs[i]) if i is not None else None
        return self._baseline_decision(view, x, arm, cohort, learned_arm, lp)

    def _baseline_decision(
        self,
        view: Any,
        x: tuple[float, ...],
        arm: str,
        cohort: str,
        learned_arm: str | None,
        learned_p: float | None,
    ) -> Decision:
        if arm not in view.snapshot.index:
            # not one of the policy's arms: serve it, but an event would be refused downstream
            self.unlogged += 1
            return Decision(
                new_decision_id(), arm, 1.0, cohort, int(view.snapshot.version), x, None, False
            )
        return self._decide(view, x, arm, 1.0, cohort, learned_arm, learned_p)

    def _baseline_unlogged(self, request: Mapping[str, Any]) -> Decision:
        self.fallbacks += 1
        self.unlogged += 1
        fallback = self.providers[0] if self.providers else None
        arm = self._baseline_arm(request, fallback) if self.baseline or fallback else None
        if arm is None:
            return self._unavailable()
        return Decision(new_decision_id(), arm, 1.0, "baseline", 0, (), None, False)
