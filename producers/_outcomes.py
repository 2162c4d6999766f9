"""``OutcomeTracker``: decisions waiting for their outcome, and what their outcome parts do.

It remembers decisions for two reasons:

* the original ``select_provider`` / ``update_from_response`` API, which reports an
  outcome by (feature vector, provider) instead of decision id: the oldest unreported
  decision with that key is matched (FIFO);
* in-process learning (a ``learner`` is given): every decision waits here until its
  outcome is complete, then one observation is learnt (its reward and its
  ``policy_store.component_values``, which a constrained objective needs).

In-process, outcome parts follow the same rule as the stream join
(``policy_store.merge_parts`` and ``is_complete``): a part that repeats what is known
is a duplicate (counted, accepted); a part that contradicts a known value or names
another arm than the decision served is a conflict: refused whole (``report``
returns False), counted, and the earlier parts stay as they were. The outcome is
learnt once it is final, failed, or has every component the reward spec requires.
At most ``max_pending`` decisions are remembered; the oldest are forgotten first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policy_store import RewardSpec, is_complete, merge_parts

from ._decision import new_decision_id

log = logging.getLogger(__name__)


class Learner(Protocol):
    """Learns complete outcomes in this process (``InProcessSource``): their reward and
    component values under ``spec``."""

    @property
    def spec(self) -> RewardSpec: ...

    def learn(
        self, key: str, arm: str, x: Sequence[float], outcome: Mapping[str, Any], learned: bool, /
    ) -> int:
        """Apply one complete outcome; ``learned``: served by the learned policy (its
        outcome moves a constrained objective's multiplier). The new version."""


@dataclass(slots=True)
class _Pending:
    """A decision waiting for its outcome."""

    arm: str
    features: tuple[float, ...]
    index_key: Any = None
    outcome: dict[str, Any] = field(default_factory=dict)  # the parts merged so far
    learned: bool = True  # served by the learned policy (cohort rl): its outcome moves λ


class OutcomeTracker:
    """Pending decisions: legacy matching and, with a ``learner``, in-process learning."""

    def __init__(self, max_pending: int, learner: Learner | None = None) -> None:
        self.max_pending = int(max_pending)
        self.learner = learner
        #: in-process learning needs every decision; streaming only the legacy API's
        self.track_all = learner is not None
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._by_request: dict[Any, deque[str]] = {}
        self.unmatched = 0
        self.conflicts = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._pending)

    def remember(
        self,
        decision_id: str,
        arm: str,
        features: tuple[float, ...],
        index_key: Any = None,
        cohort: str = "rl",
    ) -> None:
        """Keep a decision until its outcome; ``index_key`` makes ``match`` find it. Only an
        ``rl``-cohort decision's outcome moves a constrained objective's multiplier."""
        with self._lock:
            pending = self._pending.get(decision_id)
            if pending is None:
                pending = _Pending(arm, features, learned=cohort == "rl")
                self._pending[decision_id] = pending
            if index_key is not None:
                pending.index_key = index_key
                self._by_request.setdefault(index_key, deque()).append(decision_id)
            while len(self._pending) > self.max_pending:
                old_id, old = self._pending.popitem(last=False)
                self._unindex(old_id, old)

    def _unindex(self, decision_id: str, pending: _Pending) -> None:
        q = self._by_request.get(pending.index_key)
        if q is None:
            return
        try:
            q.remove(decision_id)
        except ValueError:
            pass
        if not q:
            del self._by_request[pending.index_key]

    def _forget(self, decision_id: str, pending: _Pending) -> None:
        self._pending.pop(decision_id, None)
        self._unindex(decision_id, pending)

    def match(self, index_key: Any) -> str | None:
        """The oldest pending decision remembered under ``index_key`` (taken off the index)."""
        with self._lock:
            q = self._by_request.get(index_key)
            found = None
            while q:
                candidate = q.popleft()
                if candidate in self._pending:
                    found = candidate
                    break
            if q is not None and not q:
                del self._by_request[index_key]
            return found

    def arm_of(self, decision_id: str) -> str | None:
        """The arm a pending decision served (None if it is not pending)."""
        pending = self._pending.get(decision_id)
        return pending.arm if pending is not None else None

    def report(self, decision_id: str, part: Mapping[str, Any]) -> bool:
        """Take one outcome part (``policy_store.outcome_part``); whether it was accepted.

        Streaming (no learner): always accepted (the stream join judges it); a final or
        failed part ends the decision's legacy matching. In-process: see the module
        docstring; a part for a decision that is not pending (unknown, already learnt or
        forgotten) is counted in ``unmatched`` and refused.
        """
        learner = self.learner
        with self._lock:
            pending = self._pending.get(decision_id)
            if learner is None:
                if pending is not None and (part.get("final") or part.get("error")):
                    self._forget(decision_id, pending)
                return True
            if pending is None:
                self.unmatched += 1
                return False
            merged, verdict, detail = merge_parts(pending.outcome, part, pending.arm)
            if verdict == "conflict":
                self.conflicts += 1
                log.debug("outcome part of %s refused: %s", decision_id, detail)
                return False
            if verdict == "duplicate":
                self.duplicates += 1
                return True
            pending.outcome = merged
            spec = learner.spec
            if is_complete(spec, merged) is None:
                return True
            self._forget(decision_id, pending)
        learner.learn(decision_id, pending.arm, pending.features, merged, pending.learned)
        return True

    def learn_unmatched(
        self, provider: str, features: tuple[float, ...], outcome: Mapping[str, Any]
    ) -> bool:
        """An outcome no pending decision matched: learnt directly in-process, else counted."""
        learner = self.learner
        if learner is None:
            self.unmatched += 1
            return False
        learner.learn(new_decision_id(), provider, features, outcome)
        return True
