"""``Objective``: what a policy optimises — the weighted reward, or a constrained goal.

* ``Objective()`` (``kind="weighted"``, the default): maximise the ``RewardSpec``'s
  weighted reward, exactly as before objectives existed.
* ``Objective(kind="quality_floor", quality_margin=0.01)``: minimise cost (plus
  ``latency_weight`` · latency) while mean quality stays ≥ the quality the policy's
  ``baseline_arm`` would give on the same traffic − the margin;
  ``quality_floor=0.85`` sets an absolute floor instead.
* ``Objective(kind="budget", max_cost=0.15)``: maximise quality (minus
  ``latency_weight`` · latency) while mean cost per request ≤ ``max_cost``, in the
  outcome's cost units (dollars when the reward spec has ``cost_cap``).

The constraint is enforced by a Lagrange multiplier λ stored with the policy's state
(``PolicyState.dual``); the arithmetic (component weights at λ, the target, its
confidence buffer, the multiplier's step) is in ``policy_store._constraint``, and
docs/algorithms.md ("Objectives") explains it. This module only holds the model and
its validation; the checks that need the rest of the policy (a margin needs a
``baseline_arm``, ``max_cost`` against ``cost_cap``) are ``PolicyConfig``'s.

>>> Objective(kind="budget", max_cost=0.15).component
'cost'
>>> Objective().constrained
False
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ObjectiveKind = Literal["weighted", "quality_floor", "budget"]

#: default step η of the multiplier per constrained kind, chosen on simulated worlds
#: (docs/algorithms.md, "Objectives"): a quality floor's λ settles around 5-20
#: (cost per unit of quality), a budget's around 0.2-1 (quality per unit of cost).
DEFAULT_DUAL_STEP = {"quality_floor": 1.0, "budget": 0.3}


class Objective(BaseModel):
    """A policy's objective (see the module docstring); frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ObjectiveKind = "weighted"
    quality_margin: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="quality_floor: allowed loss of mean quality against the baseline arm.",
    )
    quality_floor: float | None = Field(
        None, ge=0, le=1, description="quality_floor: an absolute floor on mean quality instead."
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description="budget: mean cost per request allowed (dollars when the spec has cost_cap).",
    )
    latency_weight: float = Field(
        0.0,
        ge=0,
        description="Constrained kinds: weight of (normalised) latency beside the goal; "
        "the weighted kind takes its weights from the RewardSpec.",
    )
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="quality_floor: the level of the two-sided Welch interval the operator "
        "tests non-inferiority with (rl-commons report --level); budget: the one-sided "
        "confidence that mean cost stays under max_cost (0.5: no buffer).",
    )
    power: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="quality_floor: the probability that the non-inferiority test at that "
        "level passes when quality sits on the buffered floor (0.5: a coin flip).",
    )
    dual_step: float | None = Field(
        None,
        gt=0,
        description="Step η of the multiplier per unit of constraint violation; None: "
        f"{DEFAULT_DUAL_STEP}.",
    )

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Objective:
        k = self.kind
        if k == "quality_floor":
            if (self.quality_margin is None) == (self.quality_floor is None):
                raise ValueError(
                    "kind='quality_floor' needs exactly one of quality_margin (relative to the "
                    "policy's baseline_arm, e.g. 0.01) or quality_floor (absolute, e.g. 0.85)"
                )
        elif self.quality_margin is not None or self.quality_floor is not None:
            raise ValueError(
                f"quality_margin / quality_floor belong to kind='quality_floor', not {k!r}; "
                "remove them or change kind"
            )
        if k == "budget" and self.max_cost is None:
            raise ValueError(
                "kind='budget' needs max_cost (mean cost per request allowed, in the outcome's "
                "cost units), e.g. Objective(kind='budget', max_cost=0.15)"
            )
        if k != "budget" and self.max_cost is not None:
            raise ValueError(
                f"max_cost belongs to kind='budget', not {k!r}; remove it or change kind"
            )
        if k == "weighted" and self.latency_weight != 0.0:
            raise ValueError(
                "kind='weighted' takes its weights from the policy's RewardSpec; set "
                "reward.latency_weight instead of the objective's latency_weight"
            )
        return self

    @property
    def constrained(self) -> bool:
        """Whether this objective has a constraint (and so a multiplier)."""
        return self.kind != "weighted"

    @property
    def component(self) -> Literal["quality", "cost"] | None:
        """The outcome component the constraint is on (None for ``weighted``)."""
        return {"quality_floor": "quality", "budget": "cost"}.get(self.kind)  # type: ignore[return-value]

    @property
    def step(self) -> float:
        """The multiplier's step η (``dual_step`` or the kind's default; 0 for weighted)."""
        if self.dual_step is not None:
            return float(self.dual_step)
        return DEFAULT_DUAL_STEP.get(self.kind, 0.0)

    @property
    def z(self) -> float:
        """The one-sided normal quantile of ``confidence`` (1.645 at 0.95)."""
        return NormalDist().inv_cdf(self.confidence)

    @property
    def z_power(self) -> float:
        """The normal quantile of ``power`` (1.645 at 0.95; 0 at 0.5)."""
        return NormalDist().inv_cdf(self.power)
