"""The rollout step of a selection: who serves a request, the learned policy or the baseline.

``Rollout`` is what ``SafeProviderSelector`` gives the selection flow of
``ProviderSelector`` (a plain ``ProviderSelector`` has none: the learned policy
always serves). For each request the selection flow has already handled the
policy-not-loaded, kill-switch and staleness cases; then:

* shadow mode (``shadow=True``) → the baseline serves every request;
* otherwise the request key (user or session id) is hashed with BLAKE2b, salted
  with the policy name, into u ∈ [0, 1): u < ``rollout_fraction`` → the learned
  policy serves, else the baseline. The same key always lands in the same cohort;
  without a key, u is drawn from the selector's generator (not sticky).

The baseline is any callable ``request -> provider`` (a function, a lambda, a bound
method) or any object with ``select_provider(request) -> str``; anything else is refused
with ``TypeError`` when the selector is built. Without one, or when it raises or returns
something that is not a provider name (counted in ``errors``; the first failure is
logged at WARNING, the rest at DEBUG), the policy's ``fallback_arm`` serves.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from policy_store import PolicyConfig

log = logging.getLogger(__name__)

_SCALE = float(1 << 64)


class RouterObject(Protocol):
    def select_provider(self, request: Mapping[str, Any]) -> str: ...


#: What ``SafeProviderSelector(baseline=...)`` takes: a callable or a router object.
Baseline = Callable[[Mapping[str, Any]], str] | RouterObject


def baseline_function(baseline: Baseline | None) -> Callable[[Mapping[str, Any]], Any] | None:
    """The function ``request -> provider`` behind ``baseline`` (None stays None).

    An object with ``select_provider`` is used through that method, else a callable is
    called directly; anything else, or a class instead of an instance, is a ``TypeError``.

    >>> baseline_function(lambda request: "gpt-4")({})
    'gpt-4'
    >>> baseline_function(FixedBaseline("llama"))({})
    'llama'
    """
    if baseline is None:
        return None
    if isinstance(baseline, type):
        raise TypeError(
            f"baseline is the class {baseline.__name__}, not an instance: "
            f"pass baseline={baseline.__name__}(...)"
        )
    method = getattr(baseline, "select_provider", None)
    if callable(method):
        return method
    if callable(baseline):
        return baseline
    raise TypeError(
        "baseline must be a callable request -> provider name, or an object with "
        f"select_provider(request); got {type(baseline).__name__}"
    )


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


class Rollout:
    """Serves the learned policy to ``rollout_fraction`` of request keys, the baseline to the rest.

    >>> from policy_store import make_config
    >>> config = make_config(name="p", arms=["a", "b"], n_features=1, rollout_fraction=0.5)
    >>> rollout = Rollout(FixedBaseline("b"))
    >>> rng = np.random.default_rng(0)
    >>> rollout.learned_serves(config, {}, "user-1", rng) == rollout.learned_serves(
    ...     config, {"prompt": "other"}, "user-1", rng)
    True
    >>> rollout.baseline_arm({}, config.fallback_arm)
    'b'
    """

    def __init__(self, baseline: Baseline | None = None) -> None:
        self.baseline = baseline
        self._pick = baseline_function(baseline)
        self.errors = 0

    def learned_serves(
        self,
        config: PolicyConfig,
        request: Mapping[str, Any],
        request_key: str | None,
        rng: np.random.Generator,
    ) -> bool:
        """Whether the learned policy serves this request (else the baseline)."""
        if config.shadow:
            return False
        key = request_key or request_key_of(request)
        u = cohort_position(key, config.name) if key is not None else rng.random()
        return u < config.rollout_fraction

    def baseline_arm(self, request: Mapping[str, Any], fallback: str | None) -> str | None:
        """The baseline's arm for ``request``; ``fallback`` without a baseline or if it fails."""
        pick = self._pick
        if pick is None:
            return fallback
        try:
            arm = pick(request)
            if isinstance(arm, str) and arm:
                return arm
            problem = f"returned {arm!r}, not a provider name"
        except Exception as exc:  # fail open: the baseline must not fail the request
            problem = f"raised {type(exc).__name__}: {exc}"
        self.errors += 1
        log.log(
            logging.WARNING if self.errors == 1 else logging.DEBUG,
            "baseline %s; serving %s instead (counted in baseline_errors; "
            "further failures are logged at DEBUG)",
            problem,
            fallback,
        )
        return fallback
