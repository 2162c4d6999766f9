"""Reward computation: a joined decision and its (merged) outcome -> a ``RewardEvent``.

Pure functions, no I/O. When a merged outcome is complete (``is_complete``) and what
it scores (``score``) come from the outcome rule of ``policy_store``, which the
in-process selector uses too. The scalar reward is the policy's ``RewardSpec.reward`` of
the raw outcome values (the spec normalises cost and latency with its caps and
clips every component to [0, 1]); an error gets the spec's ``failure_reward``.
Components the outcome did not carry take the spec's defaults and are listed in
``RewardComponents.defaulted`` (the stream app counts them as ``missing:<name>``).

The reward is attributed to the arm the policy chose (``decision.arm``): when the
proxy fell back to another provider after an error, the chosen arm gets the
failure reward; the fallback's result says nothing about the chosen arm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from policy_store import OUTCOME_COMPONENTS, RewardSpec, outcome_reward
from policy_store import is_complete as is_complete  # re-exported: stream_app.is_complete
from producers import RewardComponents, RewardEvent

COMPONENTS = OUTCOME_COMPONENTS
RewardReason = Literal["complete", "final", "window", "expired"]

#: The scalar reward of a merged outcome: the rule shared with the in-process selector.
score = outcome_reward


def components_of(spec: RewardSpec, outcome: Mapping[str, Any] | None) -> RewardComponents:
    """Normalised components of an outcome (None where missing) and which were defaulted."""
    o = outcome or {}
    error = bool(o.get("error"))
    q, c, lat = o.get("quality"), o.get("cost"), o.get("latency")
    missing = tuple(name for name, v in zip(COMPONENTS, (q, c, lat), strict=True) if v is None)
    return RewardComponents(
        quality=None if q is None else min(max(float(q), 0.0), 1.0),
        cost=None if c is None else spec.normalise_cost(float(c)),
        latency=None if lat is None else spec.normalise_latency(float(lat)),
        error=error,
        # an error's reward is fixed: nothing was filled in with a default
        defaulted=() if error else missing,
    )


def clipped_components(spec: RewardSpec, outcome: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The components of an outcome that had to be clipped to [0, 1] after the spec's caps:
    a value in the wrong units (dollars or ms with no cap, a score above 1). The reward
    still clips them; the stream app counts them as ``clipped:<name>`` so it is never silent.

    >>> clipped_components(RewardSpec(), {"cost": 0.004, "latency": 850.0})
    ('latency',)
    >>> clipped_components(RewardSpec(latency_cap_ms=10_000), {"latency": 850.0})
    ()
    """
    o = outcome or {}
    if o.get("error"):
        return ()
    caps = {"quality": None, "cost": spec.cost_cap, "latency": spec.latency_cap_ms}
    out = []
    for name in COMPONENTS:
        v = o.get(name)
        if v is None:
            continue
        x = float(v) / caps[name] if caps[name] else float(v)
        if x < 0.0 or x > 1.0:
            out.append(name)
    return tuple(out)


def make_reward(
    spec: RewardSpec,
    decision: Mapping[str, Any],
    outcome: Mapping[str, Any] | None,
    *,
    reason: RewardReason,
    now: float,
) -> RewardEvent:
    """The reward event for a decision (a dict of ``DecisionEvent`` fields).

    With ``reason="expired"`` (no outcome ever came) the reward is the spec's
    ``reward_on_expiry`` and every component counts as defaulted.
    """
    if reason == "expired":
        if spec.reward_on_expiry is None:
            raise ValueError("this policy gives no reward on expiry (reward_on_expiry is None)")
        value = float(spec.reward_on_expiry)
        comps = RewardComponents(defaulted=COMPONENTS)
        outcome_ts = None
    else:
        value = score(spec, outcome)
        comps = components_of(spec, outcome)
        outcome_ts = (outcome or {}).get("timestamp")
    return RewardEvent(
        decision_id=decision["decision_id"],
        policy=decision["policy"],
        policy_version=decision["policy_version"],
        arm=decision["arm"],
        features=tuple(decision["features"]),
        reward=value,
        components=comps,
        propensity=decision["propensity"],
        cohort=decision.get("cohort", "rl"),
        learned_arm=decision.get("learned_arm"),
        learned_propensity=decision.get("learned_propensity"),
        decision_ts=decision["timestamp"],
        outcome_ts=outcome_ts,
        reward_ts=now,
        reason=reason,
    )
