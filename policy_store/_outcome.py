"""The outcome rule: how the parts of one decision's outcome merge, and when it can be rewarded.

One rule for both ways of learning: the stream join (``stream_app``) and the
in-process ``ProviderSelector`` (``producers``) feed every part through
``merge_parts`` and ask ``is_complete`` of the merged outcome, so the same parts
teach both the same thing. Pure functions over plain dicts, no I/O.

An outcome part is a dict of the fields it carries (a field that was not given is
absent, never None): ``arm``, ``quality``, ``cost``, ``latency``, ``error``,
``fallback_arm``, ``final`` (only when true) and ``timestamp`` (``outcome_part``
builds it from an ``OutcomeEvent``).

Merging, field by field:

* ``new``: the part adds at least one field and contradicts none; the merged
  outcome has every field of both and the later ``timestamp``;
* ``duplicate``: every field is already known with the same value (only the
  ``timestamp`` may differ); nothing changes;
* ``conflict``: a field contradicts a known value, or the part names an ``arm``
  other than the one the decision served; the part is refused whole and nothing
  changes (the stream join sends it to the DLQ, the selector counts it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from ._config import RewardSpec

OUTCOME_COMPONENTS = ("quality", "cost", "latency")
PART_FIELDS = ("arm", "quality", "cost", "latency", "error", "fallback_arm")

Verdict = Literal["new", "duplicate", "conflict"]
Completeness = Literal["complete", "final"]


class Merge(NamedTuple):
    """What ``merge_parts`` made of a part: the merged outcome, the verdict, why a conflict."""

    outcome: dict[str, Any]
    verdict: Verdict
    detail: str | None = None


def outcome_part(event: Any) -> dict[str, Any]:
    """The fields one outcome event gave (an object with the ``OutcomeEvent`` attributes).

    >>> from types import SimpleNamespace as E
    >>> outcome_part(E(arm=None, quality=0.5, cost=None, latency=None, error=None,
    ...                fallback_arm=None, final=False, timestamp=2.0))
    {'quality': 0.5, 'timestamp': 2.0}
    """
    part = {}
    for name in PART_FIELDS:
        value = getattr(event, name)
        if value is not None:
            part[name] = value
    part["timestamp"] = event.timestamp
    if event.final:
        part["final"] = True
    return part


def arm_conflict(served: str | None, outcome: Mapping[str, Any] | None) -> str | None:
    """Why ``outcome`` cannot belong to a decision that served ``served`` (None: it can)."""
    if served is not None and outcome and outcome.get("arm") is not None:
        if outcome["arm"] != served:
            return f"outcome says arm {outcome['arm']!r} was called, the decision served {served!r}"
    return None


def merge_parts(
    old: Mapping[str, Any] | None, part: Mapping[str, Any], served: str | None = None
) -> Merge:
    """Merge one outcome ``part`` into the ``old`` merged outcome (see the module docstring).

    ``served`` is the arm the decision served, when the decision is known.

    >>> merge_parts({"cost": 0.1, "timestamp": 1.0}, {"quality": 0.9, "timestamp": 2.0})
    Merge(outcome={'cost': 0.1, 'timestamp': 2.0, 'quality': 0.9}, verdict='new', detail=None)
    >>> merge_parts({"cost": 0.1}, {"cost": 0.1, "timestamp": 3.0}).verdict
    'duplicate'
    >>> merge_parts({"cost": 0.1}, {"cost": 0.2}).detail
    'outcome part has cost=0.2, an earlier part had 0.1'
    """
    old = old or {}
    merged = dict(old)
    new_info = False
    for k, v in part.items():
        if k == "timestamp":
            continue
        if k in old:
            if old[k] != v:
                detail = f"outcome part has {k}={v!r}, an earlier part had {old[k]!r}"
                return Merge(dict(old), "conflict", detail)
        else:
            merged[k] = v
            new_info = True
    if not new_info:
        return Merge(dict(old), "duplicate")
    conflict = arm_conflict(served, merged)
    if conflict:
        return Merge(dict(old), "conflict", conflict)
    if "timestamp" in part:
        merged["timestamp"] = max(float(old.get("timestamp", part["timestamp"])), part["timestamp"])
    return Merge(merged, "new")


def is_complete(spec: RewardSpec, outcome: Mapping[str, Any] | None) -> Completeness | None:
    """Why the merged ``outcome`` is ready to be rewarded now, or None to keep waiting.

    ``"final"`` when the proxy said no more parts follow or the call failed (an error
    has a fixed reward), ``"complete"`` when every component in ``spec.required`` is
    present.

    >>> is_complete(RewardSpec(required=("quality",)), {"quality": 0.9})
    'complete'
    >>> is_complete(RewardSpec(), {"cost": 0.1}) is None
    True
    """
    if not outcome:
        return None
    if outcome.get("final") or outcome.get("error"):
        return "final"
    if all(outcome.get(c) is not None for c in spec.required):
        return "complete"
    return None


def outcome_reward(spec: RewardSpec, outcome: Mapping[str, Any] | None) -> float:
    """The scalar reward of a merged outcome under ``spec`` (an error: ``failure_reward``).

    >>> outcome_reward(RewardSpec(), {"quality": 1.0, "cost": 0.0, "latency": 0.0})
    1.0
    >>> outcome_reward(RewardSpec(failure_reward=-1.0), {"error": "timeout", "quality": 1.0})
    -1.0
    """
    o = outcome or {}
    return spec.reward(
        quality=o.get("quality"),
        cost=o.get("cost"),
        latency=o.get("latency"),
        error=bool(o.get("error")),
    )
