"""``OutcomeReporting``: the outcome half of ``ProviderSelector``'s API.

``report_outcome`` publishes one ``OutcomeEvent`` part (streaming) and hands it to the
``OutcomeTracker`` (in-process: learnt once complete); ``update_from_response`` is the
original API that finds the decision by (feature vector, provider). Both check the
units of cost and latency against the policy's reward spec first (``_units``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from policy_store import PolicyConfig, outcome_part

from ._units import outcome_event, outcome_units

if TYPE_CHECKING:
    from ._kafka import EventProducer
    from ._outcomes import OutcomeTracker


class OutcomeReporting:
    """Outcome reporting for a selector (mixed into ``ProviderSelector``, which provides
    the attributes below and ``features(request)``)."""

    policy: str
    producer: EventProducer | None
    _outcomes: OutcomeTracker
    _outcomes_topic: str
    config: PolicyConfig | None

    def update_from_response(
        self, request: Mapping[str, Any], provider: str, metrics: Mapping[str, Any]
    ) -> bool:
        """Original API: report ``metrics`` (quality, cost or cost_usd, latency or
        latency_ms, optional error; units as in ``report_outcome``) for the oldest
        unreported ``select_provider`` decision that served ``provider`` for a request
        with the same features; that outcome is final.

        In-process, when no such decision is pending the observation is learnt directly.
        In streaming mode it cannot be attributed: it is counted (``unmatched_updates``)
        and False is returned.
        """
        x = self.features(request)
        cost, latency = self._units(metrics)
        error = metrics.get("error")
        quality = metrics.get("quality")
        decision_id = self._outcomes.match((x, provider))
        if decision_id is not None:
            return self.report_outcome(
                decision_id,
                quality=quality,
                cost=cost,
                latency=latency,
                error=str(error) if error else None,
                provider=provider,
                final=True,
            )
        outcome = {"quality": quality, "cost": cost, "latency": latency, "error": error}
        return self._outcomes.learn_unmatched(provider, x, outcome)

    def _units(self, parts: Mapping[str, Any]) -> tuple[float | None, float | None]:
        config = self.config
        spec = config.reward if config is not None else None
        keys = ("cost", "latency", "cost_usd", "latency_ms")
        return outcome_units(self.policy, spec, **{k: parts.get(k) for k in keys})

    def report_outcome(
        self,
        decision_id: str,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        error: str | None = None,
        fallback_provider: str | None = None,
        final: bool = False,
        *,
        provider: str | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
    ) -> bool:
        """Report (part of) what happened to a decision.

        ``quality`` is in [0, 1]. ``cost_usd`` (dollars) and ``latency_ms``
        (milliseconds) are normalised by the reward spec's ``cost_cap`` and
        ``latency_cap_ms``; without the cap they are refused. ``cost`` and
        ``latency`` are in the spec's units: dollars and milliseconds when it has the
        cap, else fractions in [0, 1] (a larger value is refused, naming the cap to
        set; never clipped). ``error`` names the failure of the chosen provider;
        ``fallback_provider`` the one that served
        instead — the reward then charges the error to the chosen provider and never
        credits it with the fallback's result. Streaming: publishes an
        ``OutcomeEvent``. In-process: parts merge by the stream join's rule and the
        outcome is learnt once complete (all of the reward spec's required
        components, ``final``, or an error). Returns whether the report was accepted:
        False in-process for a decision that is not pending (unknown or already
        learnt, counted as ``unmatched_updates``) and for a part that contradicts an
        earlier one or names another provider than the one served (counted as
        ``outcome_conflicts``; the earlier parts stay). Raises ``ValueError`` for
        values out of range or in units the policy cannot read.
        """
        parts = {"cost": cost, "latency": latency, "cost_usd": cost_usd, "latency_ms": latency_ms}
        cost, latency = self._units(parts)
        event = outcome_event(
            decision_id,
            policy=self.policy,
            timestamp=time.time(),
            arm=provider or self._outcomes.arm_of(decision_id),
            quality=quality,
            cost=cost,
            latency=latency,
            error=error,
            fallback_arm=fallback_provider,
            final=final,
        )
        if self.producer is not None:
            self.producer.send(self._outcomes_topic, decision_id, event.to_bytes())
        return self._outcomes.report(decision_id, outcome_part(event))

    @property
    def unmatched_updates(self) -> int:
        """Outcomes that could not be attributed to a pending decision."""
        return self._outcomes.unmatched
