"""The demo's LLM proxy: ``SafeProviderSelector`` in streaming mode over simulated providers.

For each request ``LLMClient`` asks the selector for a provider (learned cohort or
the baseline rule, sticky per user id), calls the simulated provider, and reports the
outcome in two parts as a real proxy would: cost (dollars) and latency
(milliseconds) when the response arrives, the quality score afterwards. A failed
call falls back to another provider and the error is charged to the chosen one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy_store import Settings

from ..simulated import SimRequest, SimResponse, SimulatedProviders, request_features


@dataclass(frozen=True)
class Served:
    """One request as the proxy served it."""

    decision_id: str
    arm: str
    cohort: str
    response: SimResponse | None
    error: str | None = None


class SimulatedProxy:
    """``handle(request)`` = select, call, report; ``close()`` flushes events and stops.

    ``LLMClient`` does the selecting, the call (``SimulatedProviders.call``), the latency
    measurement (on the simulated clock), the cost report and the fallback on an error;
    the quality score is reported afterwards with ``report_outcome(..., final=True)``.
    """

    def __init__(
        self,
        settings: Settings,
        policy: str,
        world: SimulatedProviders,
        baseline: Any,
        *,
        seed: int | None = None,
    ) -> None:
        from producers import LLMClient, SafeProviderSelector

        self.world = world
        self.selector = SafeProviderSelector.connect(
            policy,
            settings,
            feature_fn=request_features,
            seed=seed,
            providers=world.names,
            baseline=baseline,
        )
        self.client = LLMClient(
            self.selector,
            world.call,
            cost_fn=lambda _provider, _prompt, resp: resp.cost,
            quality_fn=None,  # scored after the response, like a real grader
            clock=world.clock,
        )

    async def handle(self, req: SimRequest) -> Served:
        fields = req.as_dict()
        prompt = fields.pop("prompt")
        result = await self.client.call_detailed(prompt, request_key=req.user_id, **fields)
        decision = result.decision
        if result.error is None and decision.logged:
            self.selector.report_outcome(
                decision.decision_id, quality=result.response.quality, final=True
            )
        return Served(
            decision.decision_id,
            decision.provider,
            decision.cohort,
            result.response,
            result.error,
        )

    def close(self) -> None:
        """Flush the events (up to 10 s), stop the reader, and let the Kafka client go."""
        if self.selector is not None:
            self.selector.close(timeout=10.0)
        self.selector = None
        self.client = None
