"""The wire contract: events as frozen pydantic v2 models, JSON on the wire.

Topics (prefix configurable, default ``rlc.``) and keys:

    decisions  key decision_id   DecisionEvent   published by the proxy at selection
    outcomes   key decision_id   OutcomeEvent    published by the proxy, possibly in parts
    rewards    key decision_id   RewardEvent     published by the stream app after the join
    dlq        key original key  DLQRecord       anything the stream app could not use

Every event has ``schema_version`` and a ``type`` discriminator; unknown fields
are refused (``extra="forbid"``) and numbers must be finite.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from policy_store import RLCommonsError

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 256 * 1024
MAX_FEATURES = 4096
#: Largest feature magnitude the stream app accepts: far above any sensible (scaled) feature,
#: far below where x·xᵀ would overflow float64 (|x| ≈ 1.3e154).
MAX_FEATURE_ABS = 1e6

Cohort = Literal["rl", "baseline", "shadow"]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class DecisionEvent(_Event):
    """The proxy chose ``arm`` among ``arms`` for a request with ``features``."""

    type: Literal["decision"] = "decision"
    decision_id: Id
    policy: Name
    policy_version: int = Field(ge=0, description="Version of the parameters used; 0 = prior.")
    timestamp: float = Field(description="Unix seconds when the decision was made.")
    arms: tuple[Name, ...] = Field(min_length=1, max_length=256, description="Offered arms.")
    arm: Name = Field(description="The arm served.")
    propensity: float = Field(
        gt=0.0, le=1.0, description="Probability of the served arm under the serving policy."
    )
    features: tuple[float, ...] = Field(max_length=MAX_FEATURES)
    cohort: Cohort = "rl"
    learned_arm: Name | None = Field(
        None, description="baseline/shadow cohorts: what the learned policy would have chosen."
    )
    learned_propensity: float | None = Field(
        None, ge=0.0, le=1.0, description="Learned policy's probability of the served arm."
    )

    @field_validator("arm")
    @classmethod
    def _arm_offered(cls, v: str, info: Any) -> str:
        arms = info.data.get("arms")
        if arms is not None and v not in arms:
            raise ValueError(f"served arm {v!r} is not among the offered arms {list(arms)}")
        return v


class OutcomeEvent(_Event):
    """What happened to a decision; may come in parts (cost/latency first, quality later).

    ``cost`` and ``latency`` are in [0, 1] unless the policy's reward spec gives
    caps, in which case raw dollars and milliseconds are accepted.
    """

    type: Literal["outcome"] = "outcome"
    decision_id: Id
    policy: Name | None = None
    timestamp: float
    arm: Name | None = Field(None, description="The arm actually called first (the chosen one).")
    quality: Unit | None = None
    cost: NonNeg | None = None
    latency: NonNeg | None = None
    error: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Error kind if the chosen provider failed."
    )
    fallback_arm: Name | None = Field(None, description="Provider that served after an error.")
    final: bool = Field(False, description="No more parts will follow.")


class RewardComponents(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    quality: Unit | None = None
    cost: Unit | None = None
    latency: Unit | None = None
    error: bool = False
    defaulted: tuple[Literal["quality", "cost", "latency"], ...] = ()


class RewardEvent(_Event):
    """A joined, scored decision: the unit the updater learns from."""

    type: Literal["reward"] = "reward"
    decision_id: Id
    policy: Name
    policy_version: int = Field(ge=0)
    arm: Name
    features: tuple[float, ...] = Field(max_length=MAX_FEATURES)
    reward: float
    components: RewardComponents
    propensity: float = Field(gt=0.0, le=1.0)
    cohort: Cohort
    learned_arm: Name | None = None
    learned_propensity: float | None = Field(None, ge=0.0, le=1.0)
    decision_ts: float
    outcome_ts: float | None = None
    reward_ts: float
    reason: Literal["complete", "final", "window", "expired"] = "complete"


DLQReason = Literal[
    "bad_json",
    "schema",
    "non_finite",
    "out_of_range",
    "too_large",
    "feature_length",
    "unknown_policy",
    "unknown_arm",
    "late",
    "conflict",
]


class DLQRecord(_Event):
    """An input the stream app could not use, with the original bytes and the reason."""

    type: Literal["dlq"] = "dlq"
    reason: DLQReason
    detail: Annotated[str, Field(max_length=2000)]
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    original_b64: str = Field(description="The original message value, base64.")
    timestamp: float

    @classmethod
    def of(
        cls,
        reason: DLQReason,
        detail: str,
        original: bytes,
        *,
        source_topic: str,
        timestamp: float,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | str | None = None,
    ) -> DLQRecord:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        return cls(
            reason=reason,
            detail=detail[:2000],
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=key[:256] if key else None,
            original_b64=base64.b64encode(original).decode(),
            timestamp=timestamp,
        )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


Event = Annotated[
    DecisionEvent | OutcomeEvent | RewardEvent | DLQRecord, Field(discriminator="type")
]
_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[_Event], ...] = (DecisionEvent, OutcomeEvent, RewardEvent, DLQRecord)


class EventError(RLCommonsError, ValueError):
    """An event could not be parsed; ``reason`` is a DLQ reason code."""

    def __init__(self, reason: DLQReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DLQReason = reason
        self.detail = detail


def _has_non_finite(obj: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v, depth + 1) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v, depth + 1) for v in obj)
    return False


def parse_event(raw: bytes | str, expected: type[_Event] | None = None) -> Any:
    """Parse one message value; raise ``EventError`` with a DLQ reason code.

    >>> parse_event(b'{"type": "outcome", "decision_id": "d1", "timestamp": 1.0}').decision_id
    'd1'
    """
    if isinstance(raw, str):
        raw = raw.encode()
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
    if expected is not None:
        # fast path: pydantic's own JSON parser (rejects NaN/inf through allow_inf_nan);
        # any failure is parsed again below to name the precise reason
        try:
            return expected.model_validate_json(raw)
        except (ValidationError, RecursionError):
            pass
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise EventError("bad_json", f"not valid JSON: {exc}"[:500]) from None
    if not isinstance(data, dict):
        raise EventError("schema", f"expected a JSON object, got {type(data).__name__}")
    if _has_non_finite(data):
        raise EventError("non_finite", "NaN or infinity in a number")
    try:
        if expected is not None:
            event = expected.model_validate(data)
        else:
            event = _EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        errs = exc.errors()
        if any(e["type"] == "finite_number" for e in errs):
            raise EventError("non_finite", "NaN or infinity in a number") from None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in errs[:5]
        )
        raise EventError("schema", detail[:1000]) from None
    except RecursionError:
        raise EventError("schema", "nesting too deep") from None
    return event


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every event, by type name."""
    return {m.__name__: m.model_json_schema() for m in EVENT_MODELS}
