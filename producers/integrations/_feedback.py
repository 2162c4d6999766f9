"""Late outcome parts ("feedback"): a quality score, a rating, a grader's verdict.

One rule for both ways in:

* ``feedback_event(body, now)``: a JSON body such as ``{"decision_id": "…", "quality": 0.8,
  "final": true}`` as an ``OutcomeEvent``, or ``ValueError`` saying what is wrong. The
  feedback endpoint (``rl-commons feedback``, ``POST /v1/feedback``) uses it.
* ``report_feedback(target, decision_id, quality=…)``: for code that has a selector (or a
  ``BanditRoutingStrategy``) at hand; publishes the same part through it.

``final`` defaults to true: feedback is usually the last part of an outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .. import OutcomeEvent

#: Fields a feedback body may carry (``type`` and ``schema_version`` are also accepted).
FEEDBACK_FIELDS: tuple[str, ...] = (
    "decision_id",
    "quality",
    "cost",
    "latency",
    "error",
    "fallback_arm",
    "arm",
    "policy",
    "final",
    "timestamp",
)
_COMPONENTS = ("quality", "cost", "latency", "error")


def feedback_event(body: Any, now: float) -> OutcomeEvent:
    """The outcome part a feedback body describes (``final`` true unless given).

    >>> feedback_event({"decision_id": "d1", "quality": 0.8}, 10.0).to_bytes()
    b'{"schema_version":1,"type":"outcome","decision_id":"d1","timestamp":10.0,"quality":0.8,"final":true}'
    >>> feedback_event({"decision_id": "d1", "quality": 3}, 10.0)
    Traceback (most recent call last):
    ...
    ValueError: quality: Input should be less than or equal to 1
    """
    if not isinstance(body, Mapping):
        raise ValueError('the body must be a JSON object: {"decision_id": "…", "quality": 0.8}')
    unknown = sorted(set(body) - set(FEEDBACK_FIELDS) - {"type", "schema_version"})
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; allowed: {list(FEEDBACK_FIELDS)}")
    if "decision_id" not in body:
        raise ValueError("decision_id is missing: send the id the response carried")
    if not any(body.get(k) is not None for k in _COMPONENTS) and "final" not in body:
        raise ValueError(f"nothing to report: give at least one of {list(_COMPONENTS)}")
    data = {"final": True, "timestamp": now, **body}
    try:
        return OutcomeEvent.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ValueError(detail) from None


def report_feedback(
    target: Any,
    decision_id: str,
    quality: float | None = None,
    *,
    final: bool = True,
    cost: float | None = None,
    latency: float | None = None,
    error: str | None = None,
    **options: Any,
) -> bool:
    """Report a late outcome part of ``decision_id`` through ``target``.

    ``target`` is a ``ProviderSelector`` (its ``report_outcome``) or any object with a
    ``report_feedback`` method of this signature (``BanditRoutingStrategy``: ``options``
    such as ``model_group=`` go to it). Returns whether the selector accepted the part;
    ``ValueError`` for values out of range.
    """
    parts: Mapping[str, Any] = {
        "quality": quality,
        "cost": cost,
        "latency": latency,
        "error": error,
        "final": final,
    }
    own = getattr(target, "report_feedback", None)
    if own is not None:
        return bool(own(decision_id, **parts, **options))
    if options:
        raise TypeError(f"unexpected option(s) {sorted(options)} for a selector")
    return bool(target.report_outcome(decision_id, **parts))
