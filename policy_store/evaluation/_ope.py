"""Off-policy evaluation: the value of a target policy estimated from logged bandit data.

Logged data are ``n`` rounds of (context xᵢ, served arm aᵢ, reward rᵢ, propensity
pᵢ = μ(aᵢ|xᵢ) of the logging policy). The target policy π gives a distribution
π(·|xᵢ) over the K arms for every logged context. With importance weights
wᵢ = π(aᵢ|xᵢ) / pᵢ:

* IPS   V = (1/n) Σ wᵢ rᵢ                      (Horvitz & Thompson 1952)
* SNIPS V = Σ wᵢ rᵢ / Σ wᵢ                      (Swaminathan & Joachims 2015)
* DR    V = (1/n) Σ [ Σₐ π(a|xᵢ) q̂(xᵢ,a) + wᵢ (rᵢ − q̂(xᵢ,aᵢ)) ]
                                                 (Dudík, Langford & Li 2011)

where q̂ is a ridge regression of the reward on the context, one per arm, fitted
on the logs (cross-fitted over folds by default so that a round's own reward
never enters its prediction). Intervals are normal (CLT) intervals from each
estimator's per-round terms; SNIPS uses the delta method. All three are unbiased
or consistent only where the logging policy gave every arm the target can pick
a non-zero probability: rounds where pᵢ is tiny make the weights — and the
intervals — large, which the effective sample size reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._stats import Interval, norm_ppf


@dataclass(frozen=True)
class LoggedData:
    """Logged rounds: X (n, d), actions (n,) arm indices, rewards (n,), propensities (n,)."""

    X: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    arms: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.actions)
        if self.X.ndim != 2 or self.X.shape[0] != n:
            raise ValueError(f"X must have shape (n, d) with n={n}, got {self.X.shape}")
        if self.rewards.shape != (n,) or self.propensities.shape != (n,):
            raise ValueError("actions, rewards and propensities must have the same length")
        if n and (self.propensities.min() <= 0 or self.propensities.max() > 1):
            raise ValueError("propensities must be in (0, 1]; a zero propensity cannot be weighted")
        if n and (self.actions.min() < 0 or self.actions.max() >= len(self.arms)):
            raise ValueError(f"actions must index into the {len(self.arms)} arms")

    @property
    def n(self) -> int:
        return int(len(self.actions))

    @classmethod
    def from_records(
        cls,
        features: Sequence[Sequence[float]],
        arms_served: Sequence[str],
        rewards: Sequence[float],
        propensities: Sequence[float],
        arms: Sequence[str] | None = None,
    ) -> LoggedData:
        """Build from parallel lists; ``arms`` fixes the arm order (default: sorted served arms)."""
        arm_list = tuple(arms) if arms is not None else tuple(sorted(set(arms_served)))
        index = {a: i for i, a in enumerate(arm_list)}
        missing = sorted(set(arms_served) - set(index))
        if missing:
            raise ValueError(f"logged arms {missing} are not among the policy's arms {arm_list}")
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2:
            X = X.reshape(len(arms_served), -1) if len(arms_served) else X.reshape(0, 0)
        return cls(
            X=X,
            actions=np.asarray([index[a] for a in arms_served], dtype=np.intp),
            rewards=np.asarray(rewards, dtype=np.float64),
            propensities=np.asarray(propensities, dtype=np.float64),
            arms=arm_list,
        )


@dataclass(frozen=True)
class OPEResult:
    """Estimates of one target policy's value, with diagnostics."""

    ips: Interval
    snips: Interval
    dr: Interval
    n: int
    logged_value: float
    ess: float
    max_weight: float
    match_rate: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    mean_weight: float = 1.0
    overlap_warning: str | None = None

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "logged_value": self.logged_value,
            "ips": self.ips.to_dict(),
            "snips": self.snips.to_dict(),
            "dr": self.dr.to_dict(),
            "effective_sample_size": self.ess,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "match_rate": self.match_rate,
            "notes": list(self.notes),
            "overlap_warning": self.overlap_warning,
        }


def _normal(terms: np.ndarray, level: float) -> Interval:
    n = terms.size
    est = float(terms.mean())
    if n < 2:
        return Interval(est, float("nan"), float("nan"), level)
    h = norm_ppf(0.5 + level / 2) * float(terms.std(ddof=1)) / math.sqrt(n)
    return Interval(est, est - h, est + h, level)


def ips(data: LoggedData, target: np.ndarray, level: float = 0.95) -> Interval:
    """Inverse propensity scoring. ``target`` is π(·|xᵢ), shape (n, K)."""
    w = _weights(data, target)
    return _normal(w * data.rewards, level)


def snips(data: LoggedData, target: np.ndarray, level: float = 0.95) -> Interval:
    """Self-normalised IPS with a delta-method interval."""
    w = _weights(data, target)
    sw = w.sum()
    if sw <= 0:
        return Interval(float("nan"), float("nan"), float("nan"), level)
    v = float((w * data.rewards).sum() / sw)
    n = data.n
    if n < 2:
        return Interval(v, float("nan"), float("nan"), level)
    infl = w * (data.rewards - v) / (sw / n)  # influence function of the ratio estimator
    h = norm_ppf(0.5 + level / 2) * float(np.sqrt((infl**2).sum() / (n - 1) / n))
    return Interval(v, v - h, v + h, level)


def dr(data: LoggedData, target: np.ndarray, q: np.ndarray, level: float = 0.95) -> Interval:
    """Doubly robust estimate given the reward model ``q`` (``reward_model(data, ...)``)."""
    return _normal(dr_terms(data, target, q), level)


def dr_terms(data: LoggedData, target: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-round doubly robust terms; their mean is the DR estimate.

    Two targets evaluated on the same logs give paired terms, so the interval of
    their difference comes from the per-round differences.
    """
    w = _weights(data, target)
    idx = np.arange(data.n)
    return (target * q).sum(axis=1) + w * (data.rewards - q[idx, data.actions])


def dr_difference(
    data: LoggedData, target: np.ndarray, reference: np.ndarray, q: np.ndarray, level: float = 0.95
) -> Interval:
    """DR estimate of V(target) − V(reference) with a paired interval, given the reward
    model ``q``: fit it once and evaluate any number of targets on the same logs."""
    return _normal(dr_terms(data, target, q) - dr_terms(data, reference, q), level)


def reward_model(
    data: LoggedData,
    *,
    ridge: float = 1.0,
    folds: int = 2,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Predicted reward q̂(xᵢ, a) for every round and arm, shape (n, K).

    A ridge regression per arm with an intercept (the mean reward of the arm,
    so that arms with little data shrink towards their mean, not towards 0).
    With ``folds`` ≥ 2, round i is predicted by a model fitted on the other folds.
    """
    n, K = data.n, len(data.arms)
    q = np.zeros((n, K))
    if folds < 2 or n < 2 * folds:
        return _fit_predict(data, np.arange(n), np.arange(n), ridge, q)
    order = np.random.default_rng(rng).permutation(n)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part, assume_unique=True)
        _fit_predict(data, train, part, ridge, q)
    return q


def _fit_predict(
    data: LoggedData, train: np.ndarray, test: np.ndarray, ridge: float, out: np.ndarray
) -> np.ndarray:
    X, a, r = data.X[train], data.actions[train], data.rewards[train]
    global_mean = float(r.mean()) if r.size else 0.0
    d = data.X.shape[1]
    for k in range(len(data.arms)):
        m = a == k
        if not m.any():
            out[test, k] = global_mean
            continue
        Xk, rk = X[m], r[m]
        mu_x, mu_r = Xk.mean(axis=0), float(rk.mean())
        Xc = Xk - mu_x
        theta = np.linalg.solve(Xc.T @ Xc + ridge * np.eye(d), Xc.T @ (rk - mu_r))
        out[test, k] = mu_r + (data.X[test] - mu_x) @ theta
    return out


def _weights(data: LoggedData, target: np.ndarray) -> np.ndarray:
    if target.shape != (data.n, len(data.arms)):
        raise ValueError(
            f"target probabilities must have shape (n, K) = {(data.n, len(data.arms))}, "
            f"got {target.shape}"
        )
    return target[np.arange(data.n), data.actions] / data.propensities


def overlap_warning(weights: np.ndarray) -> str | None:
    """A warning when the logs cover the target policy poorly, else None.

    With importance weights wᵢ = π(aᵢ|xᵢ)/μ(aᵢ|xᵢ): the mean weight is 1 in expectation when
    the logging policy gives every arm the target picks a chance, so a mean far from 1 says
    the target puts its mass where the logs have (almost) none — a deterministic baseline
    cohort, say — even when all weights are alike and the effective sample size (Σw)²/Σw²
    looks fine; a small effective sample size or one round carrying a large share of Σw says
    a few rounds decide the estimate. Thresholds: mean weight outside [0.5, 2], effective
    sample size under 10% of n, or the largest weight over 10% of Σw (n ≥ 50).
    """
    n = int(weights.size)
    total = float(weights.sum())
    if n == 0:
        return None
    sw2 = float((weights**2).sum())
    ess = total**2 / sw2 if sw2 > 0 else 0.0
    mean_w, max_w = total / n, float(weights.max())
    weak = (
        not 0.5 <= mean_w <= 2.0 or ess < 0.1 * n or (n >= 50 and total > 0 and max_w > 0.1 * total)
    )
    if not weak:
        return None
    return (
        f"weak overlap: effective sample size {ess:,.0f} of {n:,} ({ess / n:.0%}), max weight "
        f"{max_w:.1f}, mean weight {mean_w:.2f} (about 1 when the logs cover the target) — "
        "IPS and SNIPS are unreliable here and DR rests on its reward model; evaluate on "
        "rounds logged with exploration (cohort rl) or raise the ε floor"
    )


def evaluate(
    data: LoggedData,
    target: np.ndarray,
    *,
    ridge: float = 1.0,
    folds: int = 2,
    level: float = 0.95,
    rng: np.random.Generator | int | None = 0,
    q: np.ndarray | None = None,
) -> OPEResult:
    """All three estimates of the target policy's value, with diagnostics.

    DR uses the reward model ``q`` when given, else fits ``reward_model(data, ridge=ridge,
    folds=folds, rng=rng)``. ``ess`` is the effective sample size (Σw)²/Σw² — the number
    of rounds the weighted logs are worth; ``match_rate`` the share of rounds where the
    target's most likely arm is the one that was served.
    """
    if data.n == 0:
        raise ValueError("no logged rounds to evaluate; produce some traffic first")
    target = np.asarray(target, dtype=np.float64)
    w = _weights(data, target)
    sw2 = float((w**2).sum())
    ess = float(w.sum() ** 2 / sw2) if sw2 > 0 else 0.0
    notes = []
    if ess < 0.1 * data.n:
        notes.append(
            f"effective sample size {ess:.0f} of {data.n}: the target policy rarely picks what "
            "was logged; intervals are wide and IPS is unreliable"
        )
    if float(data.propensities.min()) >= 0.999:
        notes.append(
            "every logged propensity is 1 (a deterministic logging policy): only rounds where "
            "the target agrees with the log carry information"
        )
    if q is None:
        q = reward_model(data, ridge=ridge, folds=folds, rng=rng)
    return OPEResult(
        ips=ips(data, target, level),
        snips=snips(data, target, level),
        dr=dr(data, target, q, level),
        n=data.n,
        logged_value=float(data.rewards.mean()),
        ess=ess,
        max_weight=float(w.max()),
        match_rate=float((target.argmax(axis=1) == data.actions).mean()),
        notes=tuple(notes),
        mean_weight=float(w.mean()),
        overlap_warning=overlap_warning(w),
    )


def policy_probabilities(
    algorithm,
    snapshot,
    X: np.ndarray,
    arms: Sequence[str],
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """π(·|xᵢ) of a ``policy_store`` algorithm on a snapshot, in the order of ``arms``.

    Arms the snapshot does not know get probability 0 (the target cannot pick them).
    """
    rng = np.random.default_rng(rng)
    cols = [snapshot.index.get(a) for a in arms]
    known = [c for c in cols if c is not None]
    if not known:
        raise ValueError(f"none of the logged arms {list(arms)} is an arm of the policy")
    out = np.zeros((len(X), len(arms)))
    pos = [i for i, c in enumerate(cols) if c is not None]
    for i, x in enumerate(np.asarray(X, dtype=np.float64)):
        out[i, pos] = algorithm.probabilities(snapshot, x, rng, known)
    return out
