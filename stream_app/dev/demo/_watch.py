"""How fast the learned policy noticed a change in the world (pure logic).

When the demo changes a provider mid-run, it asks the oracle which provider is now
best for a typical request of each task type. The *affected* task types are those
where the learned policy's preference just before the change must move because of
it: it preferred the changed provider and that is no longer best, or the changed
provider became the best and the policy did not prefer it. The change counts as
detected at the first probe where the learned policy's greedy choice for every
affected task type is the new best.

>>> w = ChangeWatch.start(at_request=100, at_time=10.0, provider="llama",
...                       greedy={"classify": "llama", "code": "claude-3"},
...                       new_best={"classify": "claude-3", "code": "gpt-4"})
>>> w.affected
{'classify': ('llama', 'claude-3')}
>>> w.observe(150, 12.0, {"classify": "llama", "code": "gpt-4"}) is None
True
>>> w.observe(180, 13.5, {"classify": "claude-3", "code": "gpt-4"})
(80, 3.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class ChangeWatch:
    at_request: int
    at_time: float
    affected: dict[str, tuple[str, str]] = field(default_factory=dict)
    detected: tuple[int, float] | None = None

    @classmethod
    def start(
        cls,
        at_request: int,
        at_time: float,
        greedy: Mapping[str, str],
        new_best: Mapping[str, str],
        provider: str | None = None,
    ) -> ChangeWatch:
        """``provider``: the one that changed (None: every task type whose best moved)."""
        affected = {
            t: (greedy[t], b)
            for t, b in new_best.items()
            if t in greedy and greedy[t] != b and (provider is None or provider in (greedy[t], b))
        }
        return cls(at_request, at_time, affected)

    def observe(
        self, request: int, now: float, greedy: Mapping[str, str]
    ) -> tuple[int, float] | None:
        """Record one probe; returns (requests, seconds) since the change once detected."""
        if self.detected is not None or not self.affected:
            return self.detected
        if all(greedy.get(t) == new for t, (_old, new) in self.affected.items()):
            self.detected = (request - self.at_request, now - self.at_time)
        return self.detected

    def describe(self) -> str:
        if not self.affected:
            return "the learned policy did not need to move for this change"
        moves = ", ".join(f"{t}: {old} → {new}" for t, (old, new) in self.affected.items())
        if self.detected is None:
            return f"not yet adapted ({moves})"
        n, s = self.detected
        return f"adapted after {n} requests ({s:.1f} s): {moves}"
