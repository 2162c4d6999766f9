"""What one selection produced: the ``Decision`` tuple, its id and its wire bytes.

``_DecisionEncoder`` writes the ``DecisionEvent`` JSON by hand from a prefix cached
per snapshot: the fast path of every streaming ``select`` (no pydantic validation).
"""

from __future__ import annotations

import os
import random
from typing import Any, NamedTuple

from pydantic_core import to_json

from policy_store import Snapshot


class Decision(NamedTuple):
    """One selection: what was served, with which probability, in which cohort.

    ``logged`` is False when no DecisionEvent could be written (policy not loaded,
    or a baseline arm that is not one of the policy's arms). A named tuple: cheap
    to create on the hot path, immutable.
    """

    decision_id: str
    provider: str
    propensity: float
    cohort: str
    policy_version: int
    features: tuple[float, ...]
    learned_provider: str | None = None
    logged: bool = True


class _DecisionEncoder:
    """DecisionEvent JSON from a prefix cached per snapshot: no validation on the hot path.

    The fields that do not change within a snapshot (policy, arms, version) are
    rendered once; the rest goes through pydantic-core's ``to_json`` (Rust, shortest
    round-trip floats, proper string escaping) and is spliced in after them. Only
    values the selector produced itself go in (arm names validated by the policy
    config, finite features checked by ``check_vector``, hex ids), so the bytes are a
    valid event; a unit test checks they parse into the same event as the validated
    model. Every float is written exactly (shortest repr that reads back equal).
    """

    __slots__ = ("head", "snapshot", "policy")

    def __init__(self, policy: str, snap: Snapshot) -> None:
        self.snapshot = snap
        self.policy = policy
        head = {
            "schema_version": 1,
            "type": "decision",
            "policy": policy,
            "arms": list(snap.arms),
            "policy_version": int(snap.version),
        }
        self.head = to_json(head)[:-1] + b","  # '{...,' : the per-decision fields follow

    def encode(
        self,
        decision_id: str,
        timestamp: float,
        arm: str,
        propensity: float,
        features: tuple[float, ...],
        cohort: str,
        learned_arm: str | None,
        learned_propensity: float | None,
    ) -> bytes:
        fields: dict[str, Any] = {
            "decision_id": decision_id,
            "timestamp": timestamp,
            "arm": arm,
            "propensity": propensity,
            "features": features,
            "cohort": cohort,
        }
        if learned_arm is not None:
            fields["learned_arm"] = learned_arm
            if learned_propensity is not None:
                fields["learned_propensity"] = learned_propensity
        return self.head + to_json(fields)[1:]


#: Decision ids come from a generator seeded from the OS (reseeded in a forked child):
#: ``os.urandom`` is a system call that releases the GIL on every request.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_decision_id() -> str:
    """32 random hex characters (128 bits from a generator seeded with OS randomness)."""
    return _ids.randbytes(16).hex()
