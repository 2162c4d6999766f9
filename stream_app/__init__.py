"""stream_app: the stream worker that joins decisions and outcomes into rewards and updates Redis.

Public names are imported lazily (PEP 562), so ``import stream_app`` - and every
``rl-commons`` command - stays cheap and does not import Faust until it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "app",
    "StreamApp": "app",
    "ConfigCache": "app",
    "StreamError": "_errors",
    "ChangelogError": "_errors",
    "DeliveryError": "_errors",
    "Updater": "_updater",
    "BatchResult": "_updater",
    "DEFAULT_COHORT_WEIGHTS": "_updater",
    "to_observations": "_updater",
    "WorkerMetrics": "_metrics",
    "HealthBuffer": "_metrics",
    "Step": "_join",
    "on_decision": "_join",
    "on_outcome": "_join",
    "on_tick": "_join",
    "make_reward": "_rewards",
    "score": "_rewards",
    "is_complete": "_rewards",
    "validate_decision": "_validation",
    "validate_outcome": "_validation",
    "validate_reward": "_validation",
    "PolicyRecord": "_record",
    "ChangeRelay": "_record",
    "ensure_record_topics": "_record",
    "read_policy_records": "_record",
    "policies_topic": "_record",
    "held_policies": "_record",
    "rebuild": "_rebuild",
    "RebuildResult": "_rebuild",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'stream_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
