"""``LLMClient``: select a provider, call it, measure, report the outcome, fall back on errors.

Attribution rule: the outcome always belongs to the provider the policy chose.
If that provider fails and another one serves the request, the outcome carries
``error`` (the failure kind) and ``fallback_arm`` and nothing else: the chosen
arm is charged the failure (the reward spec's ``failure_reward``) and is never
credited with the fallback's latency, cost or quality.

Latency is reported in milliseconds when the policy's reward spec has
``latency_cap_ms``; otherwise as ``seconds / latency_norm_seconds`` clipped to
[0, 1] (10 s counts as the worst latency by default). ``cost_fn`` and
``quality_fn`` must return values in the spec's units (0..1, or dollars when
the spec has ``cost_cap``); ``quality_fn`` may return None to report quality
later with ``selector.report_outcome(decision_id, quality=..., final=True)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._decision import Decision
from ._selector import ProviderSelector
from ._tracker import RLTracker

log = logging.getLogger(__name__)

CallFn = Callable[..., Awaitable[Any]]
Hook = Callable[[str, str, Any], float | None]


@dataclass(frozen=True)
class CallResult:
    """What ``LLMClient.call_detailed`` did."""

    response: Any
    provider: str
    decision: Decision
    latency_seconds: float
    fallback_provider: str | None = None
    error: str | None = None


class LLMClient:
    """``await client.call(prompt, **kwargs)`` through the provider the selector picks.

    ``call_fn(provider, prompt, **kwargs)`` is the user's async provider call;
    ``cost_fn(provider, prompt, response)`` and ``quality_fn(provider, prompt, response)``
    score a response. ``kwargs`` are passed to ``call_fn`` and also form the request
    the features are computed from (``{"prompt": prompt, **kwargs}``), so
    ``priority="speed"`` reaches both. With ``fallback=True`` a failed call is retried
    once on the best other provider (the baseline arm, else the next one in order).
    With a ``tracker``, every call counts its provider and cohort
    (``log_decision``), errors (``log_decision("error", provider)``) and the
    measured latency and scores per provider (``log_metrics``).
    """

    def __init__(
        self,
        selector: ProviderSelector,
        call_fn: CallFn,
        *,
        cost_fn: Hook | None = None,
        quality_fn: Hook | None = None,
        fallback: bool = True,
        latency_norm_seconds: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
        tracker: RLTracker | None = None,
    ) -> None:
        self.selector = selector
        self.call_fn = call_fn
        self.cost_fn = cost_fn
        self.quality_fn = quality_fn
        self.fallback = fallback
        self.latency_norm_seconds = float(latency_norm_seconds)
        self._clock = clock
        self.tracker = tracker
        self.report_errors = 0

    async def call(self, prompt: str, *, request_key: str | None = None, **kwargs: Any) -> Any:
        """The response of the chosen (or fallback) provider; re-raises if both failed."""
        return (await self.call_detailed(prompt, request_key=request_key, **kwargs)).response

    async def call_detailed(
        self, prompt: str, *, request_key: str | None = None, **kwargs: Any
    ) -> CallResult:
        request: Mapping[str, Any] = {"prompt": prompt, **kwargs}
        decision = self.selector.select(request, request_key=request_key)
        provider = decision.provider
        start = self._clock()
        try:
            response = await self.call_fn(provider, prompt, **kwargs)
        except Exception as exc:
            return await self._on_error(decision, prompt, kwargs, exc, start)
        elapsed = self._clock() - start
        quality = self._hook(self.quality_fn, provider, prompt, response)
        cost = self._hook(self.cost_fn, provider, prompt, response)
        self._report(
            decision,
            quality=quality,
            cost=cost,
            latency=self._latency(elapsed),
            final=self.quality_fn is not None,
        )
        if self.tracker is not None:
            self._track(decision, elapsed, quality, cost)
        return CallResult(response, provider, decision, elapsed)

    def _track(
        self, decision: Decision, elapsed: float, quality: float | None, cost: float | None
    ) -> None:
        t = self.tracker
        t.log_decision("provider", decision.provider)
        t.log_decision("cohort", decision.cohort)
        scores = {"latency_seconds": elapsed, "quality": quality, "cost": cost}
        t.log_metrics({k: v for k, v in scores.items() if v is not None}, arm=decision.provider)

    async def _on_error(
        self, decision: Decision, prompt: str, kwargs: dict, exc: Exception, start: float
    ) -> CallResult:
        error = type(exc).__name__
        other = self._fallback_for(decision.provider) if self.fallback else None
        if self.tracker is not None:
            self.tracker.log_decision("provider", decision.provider)
            self.tracker.log_decision("cohort", decision.cohort)
            self.tracker.log_decision("error", decision.provider)
        # the chosen arm is charged the error; the fallback's result is never reported for it
        self._report(decision, error=error, fallback_provider=other, final=True)
        if other is None:
            raise exc
        response = await self.call_fn(other, prompt, **kwargs)
        elapsed = self._clock() - start
        return CallResult(response, other, decision, elapsed, other, error)

    def _fallback_for(self, provider: str) -> str | None:
        config = self.selector.config
        arms = tuple(config.arms) if config is not None else tuple(self.selector.providers or ())
        if config is not None and config.baseline_arm and config.baseline_arm != provider:
            return config.baseline_arm
        others = [a for a in arms if a != provider]
        return others[0] if others else None

    def _latency(self, seconds: float) -> float:
        config = self.selector.config
        if config is not None and config.reward.latency_cap_ms is not None:
            return max(seconds * 1000.0, 0.0)
        return min(max(seconds / self.latency_norm_seconds, 0.0), 1.0)

    def _hook(self, fn: Hook | None, provider: str, prompt: str, response: Any) -> float | None:
        if fn is None:
            return None
        try:
            value = fn(provider, prompt, response)
        except Exception as exc:  # a scoring bug must not fail the request
            self.report_errors += 1
            log.log(self._level(), "%s failed: %s", getattr(fn, "__name__", "hook"), exc)
            return None
        return None if value is None else float(value)

    def _report(self, decision: Decision, **parts: Any) -> None:
        if not decision.logged:
            return
        try:
            self.selector.report_outcome(decision.decision_id, provider=decision.provider, **parts)
        except Exception as exc:  # out-of-range score, … : count, never fail the request
            self.report_errors += 1
            log.log(self._level(), "outcome of %s not reported: %s", decision.decision_id, exc)

    def _level(self) -> int:
        """WARNING for the first reporting error, DEBUG after it (all are in report_errors)."""
        return logging.WARNING if self.report_errors == 1 else logging.DEBUG
