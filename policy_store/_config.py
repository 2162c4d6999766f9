"""Policy configuration: what to learn, how, and how it is rolled out.

Hyperparameters live here and never change while learning; learned state lives
in ``PolicyState``. An invalid config raises ``ConfigError`` whose message names
each bad field and how to fix it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import ConfigError
from ._objective import Objective

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlgorithmConfig(_Frozen):
    """Which bandit and its hyperparameters. Defaults were chosen on the simulator (docs/)."""

    name: Literal["linucb", "ts"] = "linucb"
    alpha: float = Field(
        0.3,
        ge=0,
        description="LinUCB exploration width (UCB = θᵀx + α·σ); chosen on the simulator "
        "(docs/algorithms.md).",
    )
    epsilon: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="Probability floor spread over arms so every arm is logged (ε/K each).",
    )
    ridge: float = Field(1.0, gt=0, description="Prior precision λ: A = λI + Σxxᵀ.")
    forgetting: float = Field(
        1.0, gt=0, le=1, description="Per-observation decay γ of old statistics; 1 = no forgetting."
    )
    ts_scale: float = Field(0.3, gt=0, description="Thompson sampling posterior scale v.")
    ts_samples: int = Field(
        256, ge=16, le=100_000, description="Monte-Carlo draws used to estimate TS propensities."
    )


class RewardSpec(_Frozen):
    """reward = wq·quality + wc·(1 − cost) + wl·(1 − latency), components clipped to [0, 1].

    With ``cost_cap`` / ``latency_cap_ms`` set, raw dollars / milliseconds are
    normalised by dividing by the cap (then clipped). Missing components take the
    defaults below (counted by the stream app).
    """

    quality_weight: float = Field(0.5, ge=0)
    cost_weight: float = Field(0.3, ge=0)
    latency_weight: float = Field(0.2, ge=0)
    cost_cap: float | None = Field(None, gt=0, description="Dollars that count as cost 1.0.")
    latency_cap_ms: float | None = Field(None, gt=0, description="Milliseconds that count as 1.0.")
    default_quality: float = Field(0.5, ge=0, le=1)
    default_cost: float = Field(0.5, ge=0, le=1)
    default_latency: float = Field(0.5, ge=0, le=1)
    failure_reward: float = Field(0.0, description="Reward of a call that ended in an error.")
    required: tuple[Literal["quality", "cost", "latency"], ...] = Field(
        ("quality", "cost", "latency"),
        description="Components that make an outcome complete without an explicit final flag.",
    )
    window_seconds: float = Field(
        600.0, gt=0, description="How long a decision waits for its outcome before it expires."
    )
    reward_on_expiry: float | None = Field(
        None, description="Reward given to a decision whose outcome never came; None = no update."
    )

    @model_validator(mode="after")
    def _weights_positive(self) -> RewardSpec:
        if self.quality_weight + self.cost_weight + self.latency_weight <= 0:
            raise ValueError(
                "at least one of quality_weight, cost_weight, latency_weight must be > 0"
            )
        return self

    def normalise_cost(self, cost: float) -> float:
        if self.cost_cap is not None:
            cost = cost / self.cost_cap
        return min(max(cost, 0.0), 1.0)

    def normalise_latency(self, latency: float) -> float:
        if self.latency_cap_ms is not None:
            latency = latency / self.latency_cap_ms
        return min(max(latency, 0.0), 1.0)

    def reward(
        self,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        error: bool = False,
    ) -> float:
        """Scalar reward of one outcome (missing components take the defaults)."""
        if error:
            return float(self.failure_reward)
        q = self.default_quality if quality is None else min(max(float(quality), 0.0), 1.0)
        c = self.default_cost if cost is None else self.normalise_cost(float(cost))
        lat = self.default_latency if latency is None else self.normalise_latency(float(latency))
        return float(
            self.quality_weight * q
            + self.cost_weight * (1.0 - c)
            + self.latency_weight * (1.0 - lat)
        )


class PolicyConfig(_Frozen):
    """Everything about one policy except its learned state."""

    name: str
    arms: tuple[str, ...]
    n_features: int = Field(ge=1, le=4096)
    algorithm: AlgorithmConfig = AlgorithmConfig()
    reward: RewardSpec = RewardSpec()
    objective: Objective = Objective()
    rollout_fraction: float = Field(0.1, ge=0, le=1)
    enabled: bool = True
    shadow: bool = False
    baseline_arm: str | None = None
    max_staleness_seconds: float = Field(
        60.0, gt=0, description="Older parameters than this make the proxy serve the baseline."
    )
    dedupe_ttl_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="How long applied decision_ids are remembered."
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                "use 1-100 characters from letters, digits, '_', '.', '-' (no spaces or braces)"
            )
        return v

    @field_validator("arms")
    @classmethod
    def _arms_ok(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) < 1:
            raise ValueError("give at least one arm, e.g. arms=['gpt-4', 'claude-3', 'llama']")
        if len(set(v)) != len(v):
            dup = sorted({a for a in v if v.count(a) > 1})
            raise ValueError(f"arm names must be unique; remove the duplicates {dup}")
        for a in v:
            if not a or not _NAME_RE.match(a):
                raise ValueError(
                    f"arm {a!r}: use 1-100 characters from letters, digits, '_', '.', '-'"
                )
        return v

    @model_validator(mode="after")
    def _baseline_in_arms(self) -> PolicyConfig:
        if self.baseline_arm is not None and self.baseline_arm not in self.arms:
            raise ValueError(
                f"baseline_arm {self.baseline_arm!r} is not one of arms {list(self.arms)}; "
                "add it to arms or pick one of them"
            )
        return self

    @model_validator(mode="after")
    def _objective_fits(self) -> PolicyConfig:
        obj = self.objective
        if obj.quality_margin is not None and self.baseline_arm is None:
            raise ValueError(
                "objective quality_floor with quality_margin compares against the policy's "
                "baseline_arm: set baseline_arm (e.g. the provider served today) or give an "
                "absolute quality_floor instead"
            )
        if obj.max_cost is not None:
            cap = self.reward.cost_cap
            if cap is not None and obj.max_cost >= cap:
                raise ValueError(
                    f"objective max_cost {obj.max_cost} is not below reward.cost_cap {cap}: "
                    "costs count at most cost_cap, so the budget could never bind; lower "
                    "max_cost or raise cost_cap"
                )
            if cap is None and obj.max_cost >= 1.0:
                raise ValueError(
                    f"objective max_cost {obj.max_cost} is not below 1, the largest cost without "
                    "reward.cost_cap: the budget could never bind; lower it, or set cost_cap to "
                    "give max_cost in dollars"
                )
        return self

    @property
    def fallback_arm(self) -> str:
        """The arm served when the learned policy cannot be used."""
        return self.baseline_arm if self.baseline_arm is not None else self.arms[0]

    def with_changes(self, **changes: Any) -> PolicyConfig:
        """A validated copy with some fields changed."""
        return make_config({**self.model_dump(), **changes})

    def to_json(self) -> str:
        """The config as JSON; the default (weighted) objective is left out, so that a
        proxy from before objectives existed still reads a weighted policy's config."""
        if self.objective == Objective():
            return self.model_dump_json(exclude={"objective"})
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> PolicyConfig:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad field: where, what is wrong, and what to do."""
    lines = ["invalid policy config:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        hint = ""
        if err["type"] == "missing":
            hint = " — add this field"
        elif err["type"] == "extra_forbidden":
            hint = " — remove it or check its spelling"
        shown = "" if err["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {loc}: {msg}{shown}{hint}")
    return "\n".join(lines)


def make_config(data: dict[str, Any] | None = None, **fields: Any) -> PolicyConfig:
    """Build a ``PolicyConfig``, raising ``ConfigError`` with a readable message."""
    try:
        return PolicyConfig.model_validate({**(data or {}), **fields})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
