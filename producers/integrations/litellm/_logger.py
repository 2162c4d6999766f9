"""``OutcomeLogger``: the LiteLLM callback that reports what happened to each decision.

* Success of the chosen deployment: ``cost_usd`` from LiteLLM's ``response_cost``
  (dollars) and ``latency_ms`` (end − start of the call), normalised by the policy's
  ``cost_cap`` / ``latency_cap_ms``. Without ``latency_cap_ms`` latency is reported the way
  ``LLMClient`` does (seconds / 10, at most 1); without ``cost_cap`` the cost is left out
  (dollars are not a fraction of the worst cost) and a warning says to set the cap.
  ``quality_fn(kwargs, response)`` may score the response at once.
  The part is ``final`` unless ``expect_feedback`` (then a quality is expected later,
  through ``report_feedback`` or ``POST /v1/feedback``, or the policy's window closes it).
* Failure of the chosen deployment, or a success after LiteLLM retried or fell back:
  ``error`` (the exception's class, or the first failed attempt's) and ``final``; the
  fallback's success is never credited to the chosen arm (docs/events.md).

Each decision is reported once per process (``Ledger``); nothing here raises into LiteLLM.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from ._ledger import (
    DECISION_ARM,
    DECISION_GROUP,
    DECISION_HEADER,
    DECISION_ID,
    earlier_failure,
    request_metadata,
)
from ._strategy import BanditRoutingStrategy

log = logging.getLogger(__name__)

QualityFn = Callable[[Mapping[str, Any], Any], float | None]


def _seconds(start: Any, end: Any) -> float | None:
    try:
        if isinstance(start, datetime) and isinstance(end, datetime):
            return max((end - start).total_seconds(), 0.0)
        return max(float(end) - float(start), 0.0)
    except (TypeError, ValueError):
        return None


def _served(kwargs: Mapping[str, Any]) -> str | None:
    params = kwargs.get("litellm_params")
    info = params.get("model_info") if isinstance(params, Mapping) else None
    value = info.get("id") if isinstance(info, Mapping) else kwargs.get("model_id")
    return str(value) if value is not None else None


class OutcomeLogger(CustomLogger):
    """Report each routed request's outcome to its policy (see the module docstring)."""

    def __init__(
        self,
        strategy: BanditRoutingStrategy,
        *,
        quality_fn: QualityFn | None = None,
        expect_feedback: bool = False,
        latency_norm_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.quality_fn = quality_fn
        self.expect_feedback = expect_feedback
        self.latency_norm_seconds = float(latency_norm_seconds)
        self.reported = 0
        self.failures = 0
        self.skipped = 0
        self.report_errors = 0
        self._warned_no_cost_cap = False

    # -- LiteLLM's hooks -----------------------------------------------------------------------
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self.on_success(kwargs, response_obj, start_time, end_time)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self.on_success(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self.on_failure(kwargs)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self.on_failure(kwargs)

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):  # noqa: ANN001
        """Proxy: route through the strategy (attached to the proxy's router, again if the
        proxy rebuilt it)."""
        proxy = sys.modules.get("litellm.proxy.proxy_server")
        router = getattr(proxy, "llm_router", None)
        if router is not None and router is not self.strategy.router:
            self.strategy.attach(router)
        return data

    async def async_post_call_response_headers_hook(  # noqa: ANN201
        self,
        data,
        user_api_key_dict,
        response,
        request_headers=None,
        litellm_call_info=None,  # noqa: ANN001
    ):
        """Proxy: the decision id as a response header (``x-rlc-decision-id``)."""
        md = request_metadata(data) if isinstance(data, Mapping) else None
        return {DECISION_HEADER: str(md[DECISION_ID])} if md is not None else None

    # -- the rule ------------------------------------------------------------------------------
    def on_success(self, kwargs: Mapping[str, Any], response: Any, start: Any, end: Any) -> None:
        """A call succeeded: report the chosen arm's cost and latency, or its earlier failure."""
        md = request_metadata(kwargs)
        if md is None:
            return
        decision_id, arm = md[DECISION_ID], md.get(DECISION_ARM)
        status = self.strategy.ledger.status(decision_id)
        if status is not None or arm is None:
            self.skipped += 1
            return
        selector = self.strategy.selector_of(md.get(DECISION_GROUP))
        config = selector.config if selector is not None else None
        if config is None:
            self.skipped += 1
            return
        served = _served(kwargs)
        error = earlier_failure(md, served, arm)
        if error is not None:
            fallback = served if served in config.arms else None
            if self.strategy.ledger.close(decision_id, "failed"):
                self._report(selector, decision_id, arm, error=error, fallback_provider=fallback)
            return
        if not self.strategy.ledger.close(decision_id, "ok"):
            self.skipped += 1
            return
        spec = config.reward
        units: dict[str, float] = {}
        seconds = _seconds(start, end)
        if seconds is not None:
            if spec.latency_cap_ms is not None:
                units["latency_ms"] = seconds * 1000.0
            else:
                units["latency"] = min(seconds / self.latency_norm_seconds, 1.0)
        cost = kwargs.get("response_cost")
        if isinstance(cost, int | float) and cost >= 0:
            if spec.cost_cap is not None:
                units["cost_usd"] = float(cost)
            elif not self._warned_no_cost_cap:
                # dollars are not a fraction: without a cap the cost is left out (the spec's
                # default) rather than misread
                self._warned_no_cost_cap = True
                log.warning(
                    "policy %r has no cost_cap: LiteLLM's response_cost (dollars) is not "
                    "reported; set one (rl-commons policy create --cost-cap DOLLARS, or "
                    "reward_spec=RewardSpec(cost_cap=...)) to learn from cost",
                    config.name,
                )
        quality = self._quality(kwargs, response)
        final = quality is not None or not self.expect_feedback
        self._report(selector, decision_id, arm, quality=quality, final=final, **units)
        hidden = getattr(response, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden.setdefault(DECISION_ID, decision_id)

    def on_failure(self, kwargs: Mapping[str, Any]) -> None:
        """A call failed: the chosen arm is charged the failure (once)."""
        md = request_metadata(kwargs)
        if md is None or md.get(DECISION_ARM) is None:
            return
        decision_id = md[DECISION_ID]
        selector = self.strategy.selector_of(md.get(DECISION_GROUP))
        if selector is None or not self.strategy.ledger.close(decision_id, "failed"):
            self.skipped += 1
            return
        exc = kwargs.get("exception")
        error = type(exc).__name__ if exc is not None else "Error"
        self._report(selector, decision_id, md[DECISION_ARM], error=error)

    def _quality(self, kwargs: Mapping[str, Any], response: Any) -> float | None:
        if self.quality_fn is None:
            return None
        try:
            value = self.quality_fn(kwargs, response)
        except Exception as exc:  # a grader's bug must not lose the outcome
            self.report_errors += 1
            log.warning("quality_fn failed: %s", exc)
            return None
        return None if value is None else float(value)

    def _report(self, selector: Any, decision_id: str, arm: str, **parts: Any) -> None:
        if parts.get("error") is not None:
            self.failures += 1
            parts["final"] = True
        try:
            selector.report_outcome(decision_id, provider=arm, **parts)
            self.reported += 1
        except Exception as exc:  # out-of-range score …: counted, never raised into LiteLLM
            self.report_errors += 1
            log.warning("outcome of %s not reported: %s", decision_id, exc)
