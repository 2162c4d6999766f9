"""The dead-letter topic for operators: counts per policy and reason, and the latest records.

The DLQ topic is the record of what the workers could not use (bad JSON, schema, feature
length, unknown policy or arm, late, conflict …). A worker counts the rejects it can
attribute to a policy in Redis (``:health``), but a message that fails validation names no
policy it could be trusted with, so the topic itself is read here: each record's original
payload is decoded and attributed to the policy it names, if any.

``summarise`` is pure; ``read_dead_letters`` reads the topic (``scan_topic``) and calls it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from policy_store import Settings
from producers import DLQRecord, EventError, Topics, parse_event

from .report._source import scan_topic


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record with its original payload decoded (JSON when it parses, else text)."""

    reason: str
    detail: str
    policy: str | None
    timestamp: float
    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    payload: Any

    @classmethod
    def of(cls, record: DLQRecord) -> DeadLetter:
        raw = record.original
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        named = payload.get("policy") if isinstance(payload, dict) else None
        return cls(
            reason=record.reason,
            detail=record.detail,
            policy=named if isinstance(named, str) else None,
            timestamp=record.timestamp,
            source_topic=record.source_topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            payload=payload,
        )


@dataclass(frozen=True)
class DeadLetters:
    """What the DLQ topic holds: counts per ``(policy or None, reason)`` and the latest
    records that match the filters, oldest first."""

    topic: str
    counts: dict[tuple[str | None, str], int]
    latest: list[DeadLetter] = field(default_factory=list)
    unreadable: int = 0  # DLQ messages that are no DLQRecord

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def for_policy(self, policy: str) -> dict[str, Any]:
        """The counts a policy's page shows: its own records by reason, and the records that
        name no policy (they may be its traffic; a bad JSON message names nothing)."""
        mine = {r: n for (p, r), n in sorted(self.counts.items(), key=_key) if p == policy}
        return {
            "topic": self.topic,
            "total": sum(mine.values()),
            "by_reason": mine,
            "unattributed": sum(n for (p, _), n in self.counts.items() if p is None),
        }

    def to_dict(self) -> dict[str, Any]:
        by_reason: Counter[str] = Counter()
        for (_, reason), n in self.counts.items():
            by_reason[reason] += n
        return {
            "topic": self.topic,
            "total": self.total,
            "by_reason": dict(sorted(by_reason.items())),
            "by_policy": {
                p if p is not None else "": n
                for p, n in sorted(_by_policy(self.counts).items(), key=lambda kv: kv[0] or "")
            },
            "unreadable": self.unreadable,
            "latest": [asdict(d) for d in self.latest],
        }


def _key(item: tuple[tuple[str | None, str], int]) -> tuple[str, str]:
    (policy, reason), _ = item
    return (policy or "", reason)


def _by_policy(counts: dict[tuple[str | None, str], int]) -> dict[str | None, int]:
    out: Counter[str | None] = Counter()
    for (p, _), n in counts.items():
        out[p] += n
    return dict(out)


def summarise(
    topic: str,
    letters: Iterable[DeadLetter],
    *,
    policy: str | None = None,
    reason: str | None = None,
    tail: int = 20,
    unreadable: int = 0,
) -> DeadLetters:
    """Count every record; keep the last ``tail`` (by time) of ``policy`` and ``reason``."""
    counts: Counter[tuple[str | None, str]] = Counter()
    matching = []
    for d in letters:
        counts[(d.policy, d.reason)] += 1
        if (policy is None or d.policy == policy) and (reason is None or d.reason == reason):
            matching.append(d)
    matching.sort(key=lambda d: d.timestamp)
    latest = matching[-tail:] if tail > 0 else []
    return DeadLetters(topic, dict(counts), latest, unreadable)


def read_dead_letters(
    settings: Settings,
    *,
    policy: str | None = None,
    reason: str | None = None,
    tail: int = 20,
    timeout: float = 30.0,
) -> DeadLetters:
    """Read the DLQ topic (``RL_COMMONS_TOPIC_PREFIX`` + ``dlq``) and ``summarise`` it.

    Raises ``EvaluationSourceError`` when the broker or the topic cannot be reached.
    """
    topic = Topics.from_settings(settings).dlq
    letters: list[DeadLetter] = []
    unreadable = 0
    for _p, _o, value in scan_topic(settings, topic, timeout=timeout):
        try:
            letters.append(DeadLetter.of(parse_event(value, DLQRecord)))
        except EventError:
            unreadable += 1
    return summarise(topic, letters, policy=policy, reason=reason, tail=tail, unreadable=unreadable)
