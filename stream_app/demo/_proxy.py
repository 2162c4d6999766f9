"""The demo's LLM proxy: ``SafeProviderSelector`` in streaming mode over simulated providers.

For each request it asks the selector for a provider (learned cohort or the
baseline rule, sticky per user id), calls the simulated provider, and reports the
outcome in two parts as a real proxy would: cost (dollars) and latency
(milliseconds) when the response arrives, the quality score afterwards. A failed
call falls back to the baseline's provider and charges the error to the chosen one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy_store import Settings
from producers.simulated import (
    ProviderError,
    SimRequest,
    SimResponse,
    SimulatedProviders,
    request_features,
)


@dataclass(frozen=True)
class Served:
    """One request as the proxy served it."""

    decision_id: str
    arm: str
    cohort: str
    response: SimResponse | None
    error: str | None = None


class SimulatedProxy:
    """``handle(request)`` = select, call, report; ``close()`` flushes events and stops."""

    def __init__(
        self,
        settings: Settings,
        policy: str,
        world: SimulatedProviders,
        baseline: Any,
        *,
        seed: int | None = None,
    ) -> None:
        from producers import SafeProviderSelector

        self.world = world
        self.baseline = baseline
        self.selector = SafeProviderSelector.connect(
            policy,
            settings,
            feature_fn=request_features,
            seed=seed,
            providers=world.names,
            baseline=baseline,
        )

    async def handle(self, req: SimRequest) -> Served:
        request = req.as_dict()
        decision = self.selector.select(request)
        arm = decision.provider
        try:
            resp = await self.world.call(arm, req.prompt, **_call_fields(req))
        except ProviderError as exc:
            fallback = self.baseline.select_provider(request)
            if fallback == arm:
                fallback = next(p for p in self.world.names if p != arm)
            resp = await self.world.call(fallback, req.prompt, **_call_fields(req))
            self.selector.report_outcome(
                decision.decision_id, error=exc.kind, fallback_provider=fallback, final=True
            )
            return Served(decision.decision_id, arm, decision.cohort, resp, exc.kind)
        # the response: dollars and milliseconds now, the quality score a moment later
        self.selector.report_outcome(decision.decision_id, cost=resp.cost, latency=resp.latency_ms)
        self.selector.report_outcome(decision.decision_id, quality=resp.quality, final=True)
        return Served(decision.decision_id, arm, decision.cohort, resp)

    def close(self) -> None:
        self.selector.close(timeout=10.0)


def _call_fields(req: SimRequest) -> dict[str, Any]:
    return {
        "task_type": req.task_type,
        "prompt_tokens": req.prompt_tokens,
        "max_tokens": req.output_tokens,
    }
