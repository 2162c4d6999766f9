"""What the routing plugin and the outcome callback share about one request.

The plugin writes the decision into the request's ``metadata`` (LiteLLM carries that dict
through retries and fallbacks, hands it to every callback, and the SDK caller's own dict is
the one it fills); the ``Ledger`` remembers, per process, which decisions were already
reported, so that a retry's or a fallback's callback never reports a second outcome.

Attribution (docs/events.md): the outcome belongs to the deployment the policy chose. If
that call failed — LiteLLM then retries, possibly on another deployment, or falls back to
another model group — the chosen arm is charged the failure (``error``, ``final``) and
nothing of what served afterwards is credited to it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

#: metadata keys the plugin sets on a request it decided
DECISION_ID = "rlc_decision_id"
DECISION_ARM = "rlc_arm"
DECISION_GROUP = "rlc_model_group"
#: response header (proxy) and ``_hidden_params`` key (SDK) carrying the decision id
DECISION_HEADER = "x-rlc-decision-id"


def request_metadata(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The metadata dict of a request's kwargs (SDK: ``metadata``; proxy: ``litellm_metadata``
    on some routes), or of a callback's kwargs (under ``litellm_params``)."""
    for holder in (kwargs, kwargs.get("litellm_params")):
        if isinstance(holder, Mapping):
            for key in ("metadata", "litellm_metadata"):
                md = holder.get(key)
                if isinstance(md, dict) and DECISION_ID in md:
                    return md
    return None


def earlier_failure(md: Mapping[str, Any], served: str | None, arm: str) -> str | None:
    """The error kind if the chosen ``arm`` failed before this call succeeded, else None.

    LiteLLM records each failed attempt in ``previous_models`` and counts retries and
    fallbacks; a success on another deployment than the chosen one also means the chosen
    one did not serve.
    """
    previous = md.get("previous_models")
    if previous:
        first = previous[0]
        kind = first.get("exception_type") if isinstance(first, Mapping) else None
        return str(kind or "Retried")[:200]
    if md.get("attempted_retries") or md.get("attempted_fallbacks"):
        return "Retried"
    if served is not None and served != arm:
        return "Rerouted"
    return None


class Ledger:
    """Decisions of this process whose outcome was reported, so each is reported once.

    Bounded: the oldest ``max_size`` are forgotten first (a forgotten decision could at
    worst get a second part, which the stream join refuses as a conflict).
    """

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = int(max_size)
        self._lock = threading.Lock()
        self._closed: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._closed)

    def close(self, decision_id: str, how: str) -> bool:
        """Mark ``decision_id`` reported (``how``: ``ok`` or ``failed``); False if it was."""
        with self._lock:
            if decision_id in self._closed:
                return False
            self._closed[decision_id] = how
            while len(self._closed) > self.max_size:
                self._closed.popitem(last=False)
            return True

    def status(self, decision_id: str) -> str | None:
        """``ok``, ``failed`` or None (not reported, or forgotten)."""
        return self._closed.get(decision_id)
