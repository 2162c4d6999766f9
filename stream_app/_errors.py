"""Exceptions of the stream worker, rooted in ``policy_store.RLCommonsError``.

RLCommonsError
└── StreamError           the stream worker cannot go on as configured
    ├── ChangelogError    the join's changelog topic is missing, mismatched or unreadable
    └── DeliveryError     the broker did not acknowledge what the worker produced

The engine treats both as a broken session: it logs, waits and starts over from the
committed offsets (nothing is lost; the apply is idempotent).
"""

from __future__ import annotations

from policy_store import RLCommonsError


class StreamError(RLCommonsError):
    """Base class of the stream worker's errors."""


class ChangelogError(StreamError):
    """The join's changelog cannot be created, matched to the input topics or restored."""


class DeliveryError(StreamError):
    """Produced records (rewards, DLQ, changelog) were not acknowledged by the broker."""
