"""The units of an outcome, made explicit before it leaves the proxy.

A policy's reward spec reads cost and latency either as fractions in [0, 1] (no cap)
or as raw dollars and milliseconds normalised by its caps (``cost_cap``: the dollars
that count as the worst cost, 1.0; ``latency_cap_ms``: the milliseconds that count
as the worst latency). A reporter may say which it means:

* ``cost_usd=`` / ``latency_ms=``: dollars / milliseconds. The policy must have the
  matching cap; without one the value is refused (``ValueError`` naming the cap to set).
* ``cost=`` / ``latency=``: the policy's declared units — dollars / milliseconds when it
  has the cap, else fractions in [0, 1]; a value above 1 without a cap is refused with
  the same message, never clipped silently.

With a cap, a value above it counts as the worst (1.0): that is what the cap means.
While the policy's config is unknown (never loaded) values pass unchecked; the stream
worker judges them. ``outcome_event`` builds the validated ``OutcomeEvent`` and turns
pydantic's errors into one ``ValueError`` line per field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from policy_store import RewardSpec

from ._events import OutcomeEvent

_UNITS = {
    # component: (raw keyword, cap field, CLI option, example cap, unit)
    "cost": ("cost_usd", "cost_cap", "--cost-cap", "0.01", "dollars"),
    "latency": ("latency_ms", "latency_cap_ms", "--latency-cap-ms", "10000", "milliseconds"),
}


def _one(
    policy: str, spec: RewardSpec | None, part: str, value: float | None, raw: float | None
) -> float | None:
    keyword, cap_field, option, example, unit = _UNITS[part]
    if value is not None and raw is not None:
        raise ValueError(f"give {part}= or {keyword}=, not both")
    if spec is None:  # the policy's units are not known yet: the worker judges the value
        return raw if value is None else value
    if getattr(spec, cap_field) is not None:
        return raw if value is None else value
    fix = (
        f"set the policy's reward.{cap_field} (the {unit} that count as the worst {part}): "
        f"`rl-commons policy create {policy} {option} {example} ...` for a new policy, "
        f"store.update_config({policy!r}, reward=...) for an existing one, "
        f"RewardSpec({cap_field}={example}) in-process; or report {part}= as a fraction in [0, 1]"
    )
    if raw is not None:
        raise ValueError(
            f"{keyword}={raw} needs a cap: policy {policy!r} has no {cap_field}; {fix}"
        )
    if value is not None and value > 1.0:
        raise ValueError(
            f"{part}={value} is outside [0, 1] and policy {policy!r} has no {cap_field} to "
            f"normalise it (it would count as the worst {part}); {fix}"
        )
    return value


def outcome_units(
    policy: str,
    spec: RewardSpec | None,
    *,
    cost: float | None = None,
    latency: float | None = None,
    cost_usd: float | None = None,
    latency_ms: float | None = None,
) -> tuple[float | None, float | None]:
    """(cost, latency) in the units of ``spec`` (see the module docstring); ``ValueError``
    when a value cannot be read in them.

    >>> outcome_units("p", RewardSpec(cost_cap=0.01), cost_usd=0.004, latency=0.2)
    (0.004, 0.2)
    >>> outcome_units("p", RewardSpec(), latency_ms=850.0)
    Traceback (most recent call last):
    ...
    ValueError: latency_ms=850.0 needs a cap: policy 'p' has no latency_cap_ms; set the \
policy's reward.latency_cap_ms (the milliseconds that count as the worst latency): \
`rl-commons policy create p --latency-cap-ms 10000 ...` for a new policy, \
store.update_config('p', reward=...) for an existing one, RewardSpec(latency_cap_ms=10000) \
in-process; or report latency= as a fraction in [0, 1]
    """
    return (
        _one(policy, spec, "cost", cost, cost_usd),
        _one(policy, spec, "latency", latency, latency_ms),
    )


def outcome_event(decision_id: str, **fields: Any) -> OutcomeEvent:
    """A validated ``OutcomeEvent``; ``ValueError`` naming each bad field (at most five)."""
    try:
        return OutcomeEvent(decision_id=decision_id, **fields)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"invalid outcome for decision {decision_id}: {detail}") from None
