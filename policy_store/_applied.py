"""The exactly-once bookkeeping of positioned batches, in memory (``InMemoryPolicyStore``).

The same rules as ``apply.lua`` keeps in Redis (``:applied`` hash, ``:seen:`` sets): per
rewards partition an offset watermark, a clock (the largest ``made_at`` applied, never
ahead of now) and the decision ids of the last ``window`` seconds of that clock, in
buckets of ``DEDUPE_BUCKET_SECONDS`` by ``made_at``. Pure: no I/O, no locking (the store
holds its lock).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._state import Observation
from ._store import dedupe_bucket


class Applied:
    """What a policy remembers of positioned batches (as Redis's ``:applied`` hash and
    ``:seen:`` sets): per rewards partition the watermark, the clock and the decision ids
    of the last ``window`` seconds by bucket."""

    def __init__(self) -> None:
        self.marks: dict[int, int] = {}
        self.clocks: dict[int, float] = {}
        self.seen: dict[tuple[int, int], set[str]] = {}

    def applied(self, obs: Observation) -> bool:
        p, offset, made_at = obs.position  # type: ignore[misc]
        if offset <= self.marks.get(p, -1):
            return True
        return obs.decision_id in self.seen.get((p, dedupe_bucket(made_at)), ())

    def record(
        self, batch: Sequence[Observation], marks: Mapping[int, int], now: float, window: float
    ) -> None:
        for p, offset in marks.items():
            self.marks[p] = max(self.marks.get(p, -1), offset)
        for obs in batch:
            p, _, made_at = obs.position  # type: ignore[misc]
            self.clocks[p] = max(self.clocks.get(p, 0.0), min(made_at, now))
        cutoff = {p: dedupe_bucket(self.clocks.get(p, 0.0) - window) for p in marks}
        for key in [k for k in self.seen if k[0] in cutoff and k[1] < cutoff[k[0]]]:
            del self.seen[key]
        for obs in batch:
            p, _, made_at = obs.position  # type: ignore[misc]
            bucket = dedupe_bucket(made_at)
            if bucket >= cutoff[p]:
                self.seen.setdefault((p, bucket), set()).add(obs.decision_id)
