"""The arithmetic of objectives: component weights at λ, the constraint's target and
buffer, and the multiplier's step. Pure functions over numbers and arrays, no I/O.

A constrained objective (``Objective``) is enforced by the Lagrangian relaxation

    quality_floor:  max  −cost − w_lat·latency + λ·(quality − τ)
    budget:         max  quality − w_lat·latency − λ·(cost − B)

with one multiplier λ ≥ 0 per policy (``PolicyState.dual``). For a fixed λ this is a
weighted reward over the outcome components, so the bandit learns and selects as for
any reward (``objective_weights``: the weights the snapshot's θ is built with). λ
follows a projected subgradient step on the constraint (``dual_delta``), taken from
every learnt outcome: it grows while quality is under the floor (cost over the
budget) and shrinks towards 0 when the constraint is slack (Agrawal & Devanur 2016,
linear contextual bandits with knapsacks; Pacchiano et al. 2021, bandits with linear
constraints). The target is tightened by a confidence buffer that shrinks with
evidence (the conservative-bandit idea of Kazerouni et al. 2017 and Amani et al.
2019): a budget by the one-sided z·sd/√n (``confidence_buffer``), so mean cost stays
under it with the objective's ``confidence``; a quality floor by what the operator's
two-sample Welch non-inferiority test needs to pass with the objective's ``power``
(``welch_buffer``). docs/algorithms.md ("Objectives") has the formulas, the defaults
and how they were chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from ._components import COMPONENTS, reward_weights
from ._config import PolicyConfig, RewardSpec
from ._objective import Objective
from ._state import PolicyState
from .bandits import Snapshot

QUALITY = COMPONENTS.index("quality")
COST = COMPONENTS.index("cost")
LATENCY = COMPONENTS.index("latency")
ONE = COMPONENTS.index("one")


def objective_weights(objective: Objective, spec: RewardSpec, dual: float) -> np.ndarray:
    """The (C,) weights over ``COMPONENTS`` the policy maximises at multiplier ``dual``.

    ``weighted``: the spec's reward weights α (``reward_weights``), λ ignored.
    ``quality_floor``: (λ, −1, −w_lat, 0, 0) / (1 + λ); ``budget``: (1, −λ, −w_lat, 0, 0)
    / (1 + λ). The constant −λ·τ (+λ·B) of the Lagrangian is the same for every arm
    and left out. Dividing by 1 + λ keeps the scores in the range of a reward in
    [0, 1] whatever λ, so the bandit's exploration width (tuned for such rewards) keeps
    its meaning; the argmax over arms is unchanged by it.

    >>> objective_weights(Objective(kind="budget", max_cost=0.1), RewardSpec(), 1.0).tolist()
    [0.5, -0.5, -0.0, 0.0, 0.0]
    """
    if objective.kind == "weighted":
        return reward_weights(spec)
    lam = max(0.0, float(dual))
    w = np.zeros(len(COMPONENTS))
    w[LATENCY] = -objective.latency_weight
    if objective.kind == "quality_floor":
        w[QUALITY], w[COST] = lam, -1.0
    else:
        w[QUALITY], w[COST] = 1.0, -lam
    return w / (1.0 + lam)


def normalised_max_cost(objective: Objective, spec: RewardSpec) -> float:
    """The budget in the normalised cost units the statistics hold (``max_cost``/``cost_cap``)."""
    if objective.max_cost is None:
        raise ValueError(f"objective kind {objective.kind!r} has no max_cost")
    return spec.normalise_cost(objective.max_cost)


def constraint_target(
    objective: Objective, spec: RewardSpec, baseline_quality: float | None = None
) -> float:
    """The constraint's target τ in normalised units, before the confidence buffer.

    ``quality_floor``: the absolute ``quality_floor``, or ``baseline_quality`` (the
    baseline arm's estimated mean quality on the traffic seen, ``baseline_quality``
    of a snapshot) − ``quality_margin``; ``budget``: the normalised ``max_cost``.
    Raises ``ValueError`` for the weighted objective (no constraint) and for a margin
    without a baseline estimate.

    >>> constraint_target(Objective(kind="quality_floor", quality_margin=0.01), RewardSpec(), 0.9)
    0.89
    """
    if objective.kind == "budget":
        return normalised_max_cost(objective, spec)
    if objective.kind != "quality_floor":
        raise ValueError("the weighted objective has no constraint target")
    if objective.quality_floor is not None:
        return float(objective.quality_floor)
    if baseline_quality is None:
        raise ValueError("a quality margin needs the baseline arm's estimated quality")
    return float(baseline_quality) - float(objective.quality_margin or 0.0)


def confidence_buffer(
    objective: Objective,
    s: float,
    s2: float,
    n: float,
    target_variance: float = 0.0,
) -> float:
    """A budget's tightening: z·sqrt(sd²/n + target_variance), one-sided.

    ``s``, ``s2``, ``n`` are the sums Σw·v, Σw·v² and Σw of the constrained component
    over every observation (all arms), so sd²/n is the variance of its realised mean;
    ``target_variance`` the variance of an estimated target. z is the one-sided normal
    quantile of ``objective.confidence`` (1.645 at 0.95; 0 at 0.5). The sample variance
    needs two observations: below that only the target's own variance counts. The buffer
    shrinks like 1/√n. (A quality floor is tightened by ``welch_buffer`` instead.)

    >>> round(confidence_buffer(Objective(kind="budget", max_cost=0.2), 40.0, 20.0, 100.0), 4)
    0.0331
    """
    z = objective.z
    if z <= 0.0:
        return 0.0
    return z * math.sqrt(_mean_variance(s, s2, n) + max(target_variance, 0.0))


def _mean_variance(s: float, s2: float, n: float) -> float:
    """The variance of a mean from its sums Σw·v, Σw·v², Σw (0 below two observations)."""
    if n < 2.0:
        return 0.0
    mean = s / n
    return max(s2 / n - mean * mean, 0.0) / (n - 1.0)


@lru_cache(maxsize=32)
def _normal_quantile(p: float) -> float:
    """Φ⁻¹(p), cached: an objective's few levels are asked for at every step."""
    return NormalDist().inv_cdf(p)


def _t_quantile(p: float, df: float) -> float:
    """Student-t quantile by the Cornish-Fisher expansion to 1/df² (within 1 % of the
    exact value for df ≥ 5, 0.1 % for df ≥ 10, the normal quantile as df → ∞): cheap
    enough for every step, unlike the exact ``evaluation.t_ppf``."""
    z = _normal_quantile(p)
    if not math.isfinite(df) or df <= 0.0:
        return z
    z2 = z * z
    return z + (z2 + 1.0) * z / (4.0 * df) + ((5.0 * z2 + 16.0) * z2 + 3.0) * z / (96.0 * df * df)


def welch_buffer(
    objective: Objective,
    served: tuple[float, float, float],
    baseline: tuple[float, float, float] | None = None,
    target_variance: float = 0.0,
) -> float:
    """A quality floor's tightening, sized for the test the operator runs on it.

    ``rl-commons report`` calls quality non-inferior when the lower end of the two-sided
    Welch interval (level ``objective.confidence``) of served − baseline quality is above
    −margin. Served quality whose mean sits b above the floor passes that test with
    probability ``objective.power`` when

        b = t·SE + z_power·sqrt(SE² + target_variance),   SE² = sd_s²/n_s + sd_b²/n_b

    (the power formula of a one-sided test at the interval's lower end; t the Student
    quantile at (1 + confidence)/2 with Welch-Satterthwaite degrees of freedom). ``served``
    is the sums (Σw·q, Σw·q², Σw) of quality over every arm, ``baseline`` those of the
    baseline arm alone: its variance, and its weight as the baseline sample's size;
    ``target_variance`` the variance of the learner's estimate of the baseline's quality
    (it moves the floor, so it enters the power term). Without ``baseline`` (an absolute
    floor) it is the one-sample test of the mean against the floor. The buffer shrinks
    like 1/√n as both samples grow; 0 with no variance anywhere.

    >>> obj = Objective(kind="quality_floor", quality_margin=0.02)
    >>> round(welch_buffer(obj, (800.0, 650.0, 1000.0), (90.0, 81.5, 100.0)), 4)
    0.0282
    """
    vs = _mean_variance(*served)
    vb = 0.0 if baseline is None else _mean_variance(*baseline)
    se2 = vs + vb
    tv = max(target_variance, 0.0)
    if se2 <= 0.0:
        return _normal_quantile(objective.power) * math.sqrt(tv)
    # Welch-Satterthwaite df; a sample below two observations adds nothing
    dof = se2 * se2 / sum(v * v / (m[2] - 1.0) for v, m in ((vs, served), (vb, baseline)) if v > 0)
    t = _t_quantile(0.5 + objective.confidence / 2.0, dof)
    return t * math.sqrt(se2) + _normal_quantile(objective.power) * math.sqrt(se2 + tv)


def constraint_bound(objective: Objective, target: float, buffer: float) -> float:
    """The value the multiplier enforces: the floor raised by the buffer, the budget lowered."""
    return target + buffer if objective.kind == "quality_floor" else target - buffer


def dual_delta(
    objective: Objective,
    bound: float,
    values: np.ndarray | Sequence[Sequence[float]],
    weights: np.ndarray | Sequence[float] | None = None,
    step: float | None = None,
) -> float:
    """The multiplier's change from a batch of outcomes (projected subgradient step):

        quality_floor:  Δ = η·Σ w·(bound − quality)        budget:  Δ = η·Σ w·(cost − bound)

    ``values`` is (n, C) component values (``component_values``) in ``COMPONENTS``
    order, ``weights`` the observations' weights (1 each by default), ``step`` η (the
    objective's ``step`` by default). The store adds Δ and projects on λ ≥ 0; 0 for
    the weighted objective.

    >>> obj = Objective(kind="quality_floor", quality_floor=0.8, dual_step=2.0)
    >>> round(dual_delta(obj, 0.8, [[0.7, 0.1, 0.1, 0.0, 1.0], [0.9, 0.5, 0.1, 0.0, 1.0]]), 6)
    0.0
    >>> round(dual_delta(obj, 0.8, [[0.5, 0.1, 0.1, 0.0, 1.0]]), 6)
    0.6
    """
    if not objective.constrained:
        return 0.0
    v = np.asarray(values, dtype=np.float64).reshape(-1, len(COMPONENTS))
    w = np.ones(v.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    eta = objective.step if step is None else float(step)
    if objective.kind == "quality_floor":
        g = bound - v[:, QUALITY]
    else:
        g = v[:, COST] - bound
    return float(eta * np.dot(w, g))


# -- over a policy's config, state and snapshot ----------------------------------------------
def snapshot_weights(config: PolicyConfig, state: PolicyState) -> np.ndarray | None:
    """The component weights a snapshot of ``state`` is built with under ``config``'s
    objective (``objective_weights`` at the state's λ), or None for θ from the reward sums:
    a weighted objective over a state without component sums (exactly the behaviour
    from before objectives). With component sums the weighted objective's θ is rebuilt
    from them, so changing the reward weights needs no relearning."""
    objective = config.objective
    if not objective.constrained and all(st.components is None for st in state.arms.values()):
        return None
    return objective_weights(objective, config.reward, state.dual)


def mean_context(snap: Snapshot) -> np.ndarray | None:
    """x̄ = Σ_arms Σw·x / Σ_arms Σw over the observations with components (None: none yet)."""
    if snap.comp_y is None or snap.comp_s is None:
        return None
    total = float(snap.comp_s[:, ONE].sum())
    if total <= 0.0:
        return None
    return snap.comp_y[:, ONE, :].sum(axis=0) / total


def baseline_quality(snap: Snapshot, arm: str) -> tuple[float, float] | None:
    """The estimated mean quality of ``arm`` on the traffic seen, θ_quality[arm]·x̄ (x̄:
    ``mean_context``), and x̄ᵀA⁻¹x̄ with A the ridge Gram of that arm's component
    observations (its estimate's variance per unit of noise variance). None when the
    snapshot has no component observation or no such arm."""
    x = mean_context(snap)
    k = snap.index.get(arm)
    if x is None or k is None or snap.components is None:
        return None
    estimate = float(snap.components[k, QUALITY] @ x)
    legacy = snap.legacy is not None and bool(snap.legacy[k])
    if legacy or snap.weights is None or snap.comp_xx is None:
        gram = snap.comp_xx[k] if snap.comp_xx is not None else snap.xx[k]
        spread = float(x @ np.linalg.solve(snap.ridge * np.eye(snap.d) + gram, x))
    else:
        spread = float(x @ snap.a_inv[k] @ x)
    return estimate, spread
