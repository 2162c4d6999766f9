"""A constrained policy's multiplier over its evidence: where the constraint stands on a
snapshot (``constraint_status``) and λ's steps, one observation at a time (``DualSteps``).

The rule (``_constraint``'s formulas): each outcome the learned policy served moves λ by
the projected subgradient step η·w·g, g = bound − quality (floor) or cost − bound
(budget), at the bound of the evidence learnt before it; λ stays ≥ 0 after every step.
``DualSteps`` keeps that evidence current while it steps — the sums behind the buffer
(every observation with components, the baseline arm's apart) grow with each observation
and the bound is recomputed whenever they grew by 1 % (at least one observation) since it
was last computed — so a batch of outcomes moves λ as the same outcomes learnt one by one
would, with the baseline arm's estimated quality (the floor's target) held at the
snapshot's. The in-process learner steps once per outcome, the stream worker once per
batch; both through this class, so the rule is the same in one place.

A floor given as a margin is tested by the operator cohort against cohort, so its buffer
is sized with the rollout split (``cohort_samples``). It has no target until the baseline
arm's quality on the traffic is known to within the margin (``baseline_known``: at least
``MIN_BASELINE`` observations with components, and the half-width of its estimate's interval
at the objective's confidence at most the margin): λ does not move, and the selectors serve
the baseline arm (``awaits_baseline``), a conservative start in the spirit of Kazerouni et al.
(2017). Once the learner routes away from the baseline, it is served mostly where it is
needed, and what it adds to its estimate elsewhere is adaptively sampled (an arm is tried
where its estimate looks good and dropped after low draws, so such means are biased low):
the start's sample, drawn on the traffic as it comes, is what keeps the floor honest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._components import COMPONENTS
from ._config import PolicyConfig
from ._constraint import (
    ONE,
    _mean_variance,
    _normal_quantile,
    baseline_quality,
    confidence_buffer,
    constraint_bound,
    constraint_target,
    welch_buffer,
)
from ._objective import Objective
from ._reader import build_snapshot
from ._state import Observation, PolicyState, aggregate, apply_deltas
from .bandits import Snapshot, make_algorithm

#: observations with components the baseline arm needs at least before a margin's floor has a target
MIN_BASELINE = 20
#: the evidence's relative growth after which the bound (and a kept ``DualSteps``) is renewed
REFRESH_GROWTH = 0.01


@dataclass(frozen=True)
class ConstraintStatus:
    """Where a constrained policy stands, in normalised units (cost: ``max_cost``/``cost_cap``).

    ``target``: the floor or budget; ``buffer``: its confidence tightening
    (``welch_buffer`` for a floor, ``confidence_buffer`` for a budget; NaN with the
    target); ``bound``: what the multiplier enforces (``constraint_bound``); ``measured``:
    the realised mean of the component over every observation with components (NaN
    without any) and ``n`` their weight; ``dual``: λ of the snapshot.
    """

    component: str
    target: float
    buffer: float
    bound: float
    measured: float
    n: float
    dual: float


Sums = tuple[float, float, float]


def cohort_samples(fraction: float, served: Sums, own: Sums) -> tuple[Sums, Sums]:
    """The two samples the report's test compares, sized by the rollout split: with a
    fraction f of traffic learned (0 < f < 1) the learned cohort holds f·n of the n
    observations and the baseline cohort (1 − f)·n, whatever the baseline arm's own
    count; each keeps its mean and variance (``served``: every arm's sums, ``own``: the
    baseline arm's). With f = 1 there is no baseline cohort and the arm's own sums stay
    the baseline sample.

    >>> cohort_samples(0.5, (90.0, 81.0, 100.0), (18.0, 16.2, 20.0))[1]
    (45.0, 40.5, 50.0)
    """
    n, m = served[2], own[2]
    if not 0.0 < fraction < 1.0 or n <= 0.0 or m <= 0.0:
        return served, own
    a, b = fraction, (1.0 - fraction) * n / m
    return (served[0] * a, served[1] * a, n * a), (own[0] * b, own[1] * b, m * b)


def baseline_known(objective: Objective, own: Sums, spread: float) -> bool:
    """Whether the baseline arm's estimated quality is precise enough for a margin's floor:
    ``own`` (its quality sums Σw·q, Σw·q², Σw) holds at least ``MIN_BASELINE``
    observations, and z·sd·sqrt(``spread``) — the half-width of the estimate's interval
    at the objective's (two-sided) confidence, sd its quality's sample deviation and
    ``spread`` x̄ᵀA⁻¹x̄ — is at most the margin (a margin of 0: the count alone).

    >>> obj = Objective(kind="quality_floor", quality_margin=0.01)
    >>> own = (18.0, 16.328, 20.0)  # 20 observations: mean 0.9, sd 0.08
    >>> baseline_known(obj, own, 0.002), baseline_known(obj, own, 0.05)
    (True, False)
    """
    if own[2] < MIN_BASELINE:
        return False
    margin = float(objective.quality_margin or 0.0)
    if margin <= 0.0:
        return True
    z = _normal_quantile(0.5 + objective.confidence / 2.0)
    return z * math.sqrt(_mean_variance(*own) * own[2] * max(spread, 0.0)) <= margin


def awaits_baseline(config: PolicyConfig, snap: Snapshot) -> bool:
    """Whether ``config``'s objective is a quality floor relative to the baseline arm that
    has no target on ``snap`` yet (``baseline_known`` false for that arm's sums and
    estimate): the selectors serve the baseline arm meanwhile."""
    objective = config.objective
    if objective.kind != "quality_floor" or objective.quality_margin is None:
        return False
    arm = config.fallback_arm
    k = snap.index.get(arm)
    cs, cs2 = snap.comp_s, snap.comp_s2
    if k is None or cs is None or cs2 is None or float(cs[k, ONE]) < MIN_BASELINE:
        return True
    base = baseline_quality(snap, arm)
    if base is None:
        return True
    j = COMPONENTS.index("quality")
    own = (float(cs[k, j]), float(cs2[k, j]), float(cs[k, ONE]))
    return not baseline_known(objective, own, base[1])


class DualSteps:
    """λ's steps from ``snap`` on under ``config``'s (constrained) objective; see the
    module docstring. ``dual`` is λ after the steps taken so far, ``consumed`` the weight
    of the observations learnt since ``snap``.

    With ``state`` (the state ``snap`` was built from; the stream worker's case) the
    observations are also folded into it whenever the evidence grew by 1 %, and the
    constraint is renewed from a snapshot of the result: the baseline's estimate then
    follows the batch as it does in-process, where the learner renews its ``DualSteps``
    from its own new snapshot at the same points (``stale``)."""

    def __init__(
        self, config: PolicyConfig, snap: Snapshot, state: PolicyState | None = None
    ) -> None:
        objective = config.objective
        if objective.component is None:
            raise ValueError("the weighted objective has no multiplier")
        self.config = config
        self.version = int(snap.version)
        self.dual = float(snap.dual)
        self.consumed = 0.0
        self._j = COMPONENTS.index(objective.component)
        self._state = state
        self._pending: list[Observation] = []
        self._load(snap)

    def _load(self, snap: Snapshot) -> None:
        """The constraint's sums, target and bound from ``snap``."""
        config, objective, j = self.config, self.config.objective, self._j
        cs, cs2 = snap.comp_s, snap.comp_s2
        if cs is None or cs2 is None:
            self._served = [0.0, 0.0, 0.0]
        else:
            self._served = [float(cs[:, j].sum()), float(cs2[:, j].sum()), float(cs[:, ONE].sum())]
        self._built_n = self._served[2]
        self._base: str | None = None
        self._own = [0.0, 0.0, 0.0]
        self._spread = 0.0
        if objective.kind == "budget" or objective.quality_margin is None:
            self._target = constraint_target(objective, config.reward)
        else:
            self._base = config.fallback_arm
            k = snap.index.get(self._base)
            base = baseline_quality(snap, self._base)
            if base is None or k is None or cs is None or cs2 is None:
                self._target = math.nan
            else:
                self._own = [float(cs[k, j]), float(cs2[k, j]), float(cs[k, ONE])]
                self._target = constraint_target(objective, config.reward, base[0])
                self._spread = base[1]
        self._renew_bound()
        self._stale_at = self._growth(self._built_n)  # where the worker renews from this load

    def _renew(self, dual: float) -> None:
        """Renew the constraint after the evidence grew: from a snapshot of the state with
        the observations since folded in, or (without a state) the bound from the sums."""
        state = self._state
        if state is None:
            self._renew_bound()
            return
        config = self.config
        deltas = aggregate(self._pending, config.n_features)
        arms = apply_deltas(state.arms, deltas, config.algorithm.forgetting)
        self._state = PolicyState(arms, version=state.version, dual=dual)
        self._pending = []
        algorithm = make_algorithm(config.algorithm)
        self._load(build_snapshot(algorithm, config, self._state))

    def _renew_bound(self) -> None:
        objective = self.config.objective
        served = (self._served[0], self._served[1], self._served[2])
        self._bound_n = served[2]
        if objective.kind == "budget":
            self.buffer = confidence_buffer(objective, *served)
        elif self._base is None:
            self.buffer = welch_buffer(objective, served, None, 0.0)
        elif not math.isfinite(self._target) or not baseline_known(
            objective, (self._own[0], self._own[1], self._own[2]), self._spread
        ):
            self.buffer = math.nan  # no target yet: λ does not move
        else:
            own = (self._own[0], self._own[1], self._own[2])
            # the baseline estimate's variance: its quality's sample variance × x̄ᵀA⁻¹x̄
            target_variance = _mean_variance(*own) * own[2] * self._spread
            served, own = cohort_samples(self.config.rollout_fraction, served, own)
            self.buffer = welch_buffer(objective, served, own, target_variance)
        self.target = self._target if math.isfinite(self.buffer) else math.nan
        self.bound = constraint_bound(objective, self.target, self.buffer)

    def status(self) -> ConstraintStatus:
        """Where the constraint stands with the evidence learnt so far."""
        s, _, n = self._served
        return ConstraintStatus(
            component=self.config.objective.component or "",
            target=self.target,
            buffer=self.buffer,
            bound=self.bound,
            measured=s / n if n > 0 else math.nan,
            n=n,
            dual=self.dual,
        )

    def stale(self, config: PolicyConfig) -> bool:
        """Whether to start again from a new snapshot: ``config`` is not the one stepped
        under, or the evidence grew by ``REFRESH_GROWTH`` (one observation at least; every
        one while a margin has no target) since."""
        if config is not self.config and config != self.config:
            return True
        return self._state is None and self.consumed >= self._stale_at

    def _growth(self, n: float) -> float:
        """The evidence's growth from ``n`` after which the constraint is renewed: 1 % (one
        observation at least), or every observation while a margin has no target yet (so
        the target appears at the same observation however the outcomes are batched)."""
        return 1.0 if self.bound != self.bound else max(1.0, REFRESH_GROWTH * n)

    def step(
        self, observations: Sequence[Observation], learned: Sequence[bool] | None = None
    ) -> float:
        """Learn ``observations`` in order; λ's change. Each one with components adds to the
        evidence; those ``learned`` (all by default: served by the learned policy) step λ
        first, at the bound of the evidence before them."""
        objective = self.config.objective
        eta, floor, j = objective.step, objective.kind == "quality_floor", self._j
        lam0 = lam = self.dual
        keep = self._state is not None
        for i, o in enumerate(observations):
            if keep:
                self._pending.append(o)
            values = o.components
            if values is None:
                continue
            served, own, base = self._served, self._own, self._base
            v, w = float(values[j]), float(o.weight)
            if (learned is None or learned[i]) and self.bound == self.bound:  # not NaN
                lam = max(0.0, lam + eta * w * ((self.bound - v) if floor else (v - self.bound)))
            served[0] += w * v
            served[1] += w * v * v
            served[2] += w
            if o.arm == base:
                own[0] += w * v
                own[1] += w * v * v
                own[2] += w
            self.consumed += w
            if served[2] - self._bound_n >= self._growth(self._bound_n):
                self._renew(lam)
        self.dual = lam
        return lam - lam0


def constraint_status(config: PolicyConfig, snap: Snapshot) -> ConstraintStatus | None:
    """The constraint of ``config``'s objective on ``snap`` (None for the weighted objective).

    A floor relative to the baseline is tightened by ``welch_buffer`` of quality over
    every arm against the baseline arm's own sums (the sample the report's baseline
    cohort is), with the variance of the baseline's estimate (its quality's variance ×
    x̄ᵀA⁻¹x̄) in the power term; an absolute floor by the one-sample form; a budget by
    ``confidence_buffer``. A margin has no target (target, buffer, bound NaN: the
    multiplier does not move) until ``baseline_known``."""
    if not config.objective.constrained:
        return None
    return DualSteps(config, snap).status()


def policy_dual_delta(
    config: PolicyConfig,
    snap: Snapshot,
    observations: Sequence[Observation],
    learned: Sequence[bool] | None = None,
) -> float:
    """λ's change when ``observations`` are learnt in order into ``snap`` under ``config``'s
    objective (``DualSteps.step`` from ``snap``): 0 for the weighted objective and while
    the constraint has no target; ``learned`` marks the ones that step λ (all by default).
    """
    if not config.objective.constrained:
        return 0.0
    return DualSteps(config, snap).step(observations, learned)
