"""The join over batches of messages: per-partition tables, window sweeps, outputs.

``JoinTables`` holds one table per owned partition (decision_id -> entry, as in
``_join``) and turns messages into ``Outputs``: rewards, DLQ records and the table
changes to write to the changelog. It does no I/O; the engine (``_engine``) reads the
messages, publishes the outputs and commits the offsets. Decisions and
outcomes are co-partitioned, so the entry of a decision_id read from partition
``p`` lives in table ``p`` and its changelog record goes to changelog partition ``p``.

Counters are summed over a batch and handed to the Prometheus metrics and the
health buffer once per batch (``flush_counts``), not once per event.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from policy_store import PolicyConfig, RewardSpec
from producers import DLQRecord, EventError, RewardEvent

from ._join import State, Step, on_decision, on_outcome, on_tick, outcome_spec
from ._metrics import HealthBuffer, WorkerMetrics
from ._validation import validate_decision, validate_outcome

DECISIONS, OUTCOMES = "decisions", "outcomes"


@dataclass
class Source:
    """Where a message came from (kept for DLQ records)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass
class Outputs:
    """What a batch (or a sweep) produced, in the order it must be published."""

    rewards: list[RewardEvent] = field(default_factory=list)
    dlq: list[DLQRecord] = field(default_factory=list)
    # (partition, decision_id) -> new entry, or None to delete it; the last write wins
    changes: dict[tuple[int, str], State | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rewards or self.dlq or self.changes)


class JoinTables:
    """The join state of the partitions this worker owns, and the logic that moves it."""

    def __init__(
        self,
        configs: Callable[[str], PolicyConfig | None],
        *,
        default_window: float,
        retention: float,
        metrics: WorkerMetrics | None = None,
        health: HealthBuffer | None = None,
    ) -> None:
        self.config = configs
        self.default_window = default_window
        self.retention = retention
        self.metrics = metrics or WorkerMetrics()
        self.health = health or HealthBuffer()
        self.tables: dict[int, dict[str, State]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._by_kind: dict[str, Counter] = defaultdict(Counter)
        self._by_policy: dict[str, Counter] = defaultdict(Counter)
        self._dlq: Counter = Counter()
        self._events_in: Counter = Counter()

    # -- partitions ----------------------------------------------------------------------
    def assign(self, partition: int, entries: dict[str, State]) -> None:
        """Take over ``partition`` with the entries restored from its changelog."""
        self.tables[partition] = entries
        for key, state in entries.items():
            heapq.heappush(self._heap, (state["deadline"], partition, key))

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its heap items die lazily)."""
        self.tables.pop(partition, None)

    @property
    def partitions(self) -> set[int]:
        return set(self.tables)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())

    # -- events ----------------------------------------------------------------------------
    def _spec(self, policy: str | None) -> RewardSpec | None:
        cfg = self.config(policy) if policy else None
        return cfg.reward if cfg is not None else None

    def handle(self, kind: str, value: bytes, src: Source, now: float, out: Outputs) -> None:
        """One message from ``decisions`` or ``outcomes`` (``kind``)."""
        self._events_in[kind] += 1
        table = self.tables.get(src.partition)
        if table is None:  # not ours (any more): a rebalance will hand it to its owner
            return
        try:
            if kind == DECISIONS:
                dec, cfg = validate_decision(value, self.config, src.key, now)
                key = dec.decision_id
                step = on_decision(table.get(key), dec, cfg.reward, now, retention=self.retention)
            else:
                outcome, cfg = validate_outcome(value, self.config, src.key, now)
                key = outcome.decision_id
                state = table.get(key)
                named = cfg.reward if cfg is not None else None
                spec = outcome_spec(state, named, self._spec)
                step = on_outcome(
                    state, outcome, spec, now, self.default_window, retention=self.retention
                )
        except EventError as exc:
            out.dlq.append(self.dlq_record(exc.reason, exc.detail, value, src, now, None))
            return
        self._record(step, kind, value, src, now, out)
        if step.changed:
            if step.state is None:
                table.pop(key, None)
            else:
                table[key] = step.state
                heapq.heappush(self._heap, (step.state["deadline"], src.partition, key))
            out.changes[(src.partition, key)] = step.state

    def _record(
        self, step: Step, kind: str, value: bytes, src: Source | None, now: float, out: Outputs
    ) -> None:
        if step.counters:
            self._by_kind[kind].update(step.counters)
            if step.policy:
                self._by_policy[step.policy].update(step.counters)
        for reason, detail in step.dlq:
            assert src is not None, "a sweep never rejects input"
            out.dlq.append(self.dlq_record(reason, detail, value, src, now, step.policy))
        out.rewards.extend(step.rewards)

    def dlq_record(
        self, reason: str, detail: str, value: bytes, src: Source, now: float, policy: str | None
    ) -> DLQRecord:
        """A DLQ record for a message (counted)."""
        self._dlq[reason] += 1
        if policy:
            self._by_policy[policy][f"dlq:{reason}"] += 1
        return DLQRecord.of(
            reason,  # type: ignore[arg-type]
            detail,
            value,
            source_topic=src.topic,
            partition=src.partition,
            offset=src.offset,
            key=src.key,
            timestamp=now,
        )

    # -- the clock -------------------------------------------------------------------------
    def sweep(self, now: float, out: Outputs) -> int:
        """Close the entries whose deadline passed; returns how many changed."""
        done = 0
        seen: set[tuple[int, str]] = set()  # a key is in the heap once per write
        while self._heap and self._heap[0][0] <= now:
            _, p, key = heapq.heappop(self._heap)
            if (p, key) in seen:
                continue
            seen.add((p, key))
            table = self.tables.get(p)
            state = table.get(key) if table is not None else None
            if state is None or state["deadline"] > now:
                continue
            step = on_tick(
                state,
                self._spec(state.get("policy")),
                now,
                self.default_window,
                retention=self.retention,
            )
            if not step.changed:
                continue
            self._record(step, "sweep", b"", None, now, out)
            if step.state is None:
                table.pop(key, None)
            else:
                table[key] = step.state
                heapq.heappush(self._heap, (step.state["deadline"], p, key))
            out.changes[(p, key)] = step.state
            done += 1
        return done

    # -- counters --------------------------------------------------------------------------
    def flush_counts(self) -> None:
        """Hand the counters summed since the last call to the metrics and health buffer."""
        m = self.metrics
        for kind, n in self._events_in.items():
            m.events_in.labels(kind).inc(n)
        for kind, counters in self._by_kind.items():
            m.count_join(counters, kind)
        for reason, n in self._dlq.items():
            m.dlq.labels(reason).inc(n)
        for policy, counters in self._by_policy.items():
            self.health.add(policy, counters)
        self._events_in.clear()
        self._by_kind.clear()
        self._by_policy.clear()
        self._dlq.clear()


# -- the changelog format: key = decision_id (UTF-8), value = the entry's JSON, None = deleted
# (and checkpoints between markers, ``_checkpoint``)
def encode_entry(state: State | None) -> bytes | None:
    """A table entry as a changelog value (None, a tombstone record, deletes it)."""
    return None if state is None else json.dumps(state).encode()


def decode_entry(value: bytes | None) -> State | None:
    """A changelog value back as a table entry (None for a deleted entry)."""
    return None if value is None else json.loads(value)
