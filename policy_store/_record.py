"""The record of a policy's config changes, written by ``RedisPolicyStore`` itself.

Every change a ``RedisPolicyStore`` makes to a config (create, config, reset, delete, and
a rebuild's restore) appends a ``PolicyRecord`` to the Redis stream ``{prefix}:changes``
in the same atomic step as the change (``record.lua``, run inside the change's
MULTI/EXEC or doing the create itself), whoever calls the store: the CLI, the
dashboard, the LiteLLM proxy handler, a ``ProviderSelector`` creating its policy. Stream
workers relay the stream to Kafka (``stream_app.ChangeRelay``); ``rl-commons rebuild``
restores a wiped Redis from there.

Beside the config the store keeps the cuts a rebuild needs (``{name}:record``, a hash:
``created_at`` and ``reset_marks``) and the policy's **epoch** (``{name}:epoch``: when
this incarnation was created or rebuilt), which workers compare to notice a Redis
restored from an older snapshot (``Head.epoch``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CHANGES_MAXLEN = 10_000  # entries kept in the Redis stream (relayed within seconds)


def changes_key(prefix: str) -> str:
    """The Redis stream of recorded changes (its own slot, like the registry)."""
    return f"{prefix}:changes"


@dataclass(frozen=True)
class PolicyRecord:
    """A policy as the rebuild needs it: its config (JSON, None once deleted), the change
    that wrote this record, when, when the policy was created (rewards made before it
    belong to an earlier policy of that name) and the rewards-topic offsets of its last
    reset (per partition, the highest offset applied before it; rewards at or below it
    were forgotten).

    >>> r = PolicyRecord("p", "reset", '{"a": 1}', 2.0, 1.0, {0: 41})
    >>> PolicyRecord.from_bytes(r.to_bytes()) == r
    True
    """

    name: str
    change: str
    config: str | None
    at: float
    created_at: float
    reset_marks: dict[int, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {
            "name": self.name,
            "change": self.change,
            "config": None if self.config is None else json.loads(self.config),
            "at": self.at,
            "created_at": self.created_at,
            "reset_marks": {str(p): o for p, o in self.reset_marks.items()},
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> PolicyRecord:
        body = json.loads(raw)
        cfg = body.get("config")
        return cls(
            name=str(body["name"]),
            change=str(body["change"]),
            config=None if cfg is None else json.dumps(cfg),
            at=float(body["at"]),
            created_at=float(body["created_at"]),
            reset_marks={int(p): int(o) for p, o in (body.get("reset_marks") or {}).items()},
        )
