"""Interval estimates used by the cohort report and off-policy evaluation (numpy only).

Everything here works on summary statistics (n, mean, variance) so that the same
code serves raw events and pre-aggregated sums. Intervals are two-sided at
``level`` (default 0.95):

* ``t_ppf``            Student-t quantile for any real df (exact tail by ``betainc``; the
  tests compare it with scipy, which the package does not need).
* ``mean_interval``    Student-t interval of one mean.
* ``welch_interval``   difference of two means with unequal variances
  (Welch 1947; Satterthwaite degrees of freedom).
* ``ratio_change``     relative change ``1 − m₁/m₀`` of two independent means by the
  delta method on the log ratio (an interval that respects positivity).
* ``bootstrap_interval``  percentile bootstrap of any statistic of two samples, used
  to check the analytic intervals.
* ``non_inferior``     verdict of a non-inferiority test at a margin.
* ``json_safe``        NaN and ±inf replaced by None, so that an undefined interval
  bound becomes ``null`` in JSON (the report, ``inspect`` and the demo use it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Abramowitz & Stegun 26.2.23 is too coarse for tests; use Acklam's rational approximation.
_A = (
    -39.6968302866538,
    220.946098424521,
    -275.928510446969,
    138.357751867269,
    -30.6647980661472,
    2.50662827745924,
)
_B = (-54.4761020887090, 161.585836858041, -155.698979859887, 66.8013118877197, -13.2806815528857)
_C = (
    -0.00778489400243029,
    -0.322396458041136,
    -2.40075827716184,
    -2.54973253934373,
    4.37466414146497,
    2.93816398269878,
)
_D = (0.00778469570904146, 0.32246712907004, 2.445134137143, 3.75440866190742)


def norm_ppf(p: float) -> float:
    """Quantile of the standard normal (Acklam's approximation, refined by one Newton step).

    >>> round(norm_ppf(0.975), 4)
    1.96
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        x = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1
        )
    elif p > 1 - lo:
        return -norm_ppf(1 - p)
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
            * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1)
        )
    # one Newton step on Φ(x) = p
    err = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    x -= err * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes §6.4).

    >>> round(betainc(2.0, 3.0, 0.4), 6)
    0.5248
    """
    return _betainc(a, b, x, 1.0 - x)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) given both x and y = 1 − x (each computed without cancellation)."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    log_front += b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for t ≥ 0."""
    d = df + t * t
    return 0.5 * _betainc(df / 2.0, 0.5, df / d, t * t / d)


def _t_pdf(t: float, df: float) -> float:
    return math.exp(
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )


def _t_start(p: float, df: float) -> float:
    """A first guess: exact for df = 1 and 2, else a Cornish-Fisher expansion."""
    if df <= 1.0:
        return math.tan(math.pi * (p - 0.5))
    if df <= 2.0:
        return (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
    z = norm_ppf(p)
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` (any real > 0) degrees of freedom.

    Solves P(T > t) = 1 − p by safeguarded Newton steps on the exact tail (regularised
    incomplete beta), so it agrees with ``scipy.stats.t.ppf`` to about 1e-9 for every
    df — including the fractional df of Welch's interval, where a series is off.

    >>> round(t_ppf(0.975, 10), 4), round(t_ppf(0.975, 1.7), 3)
    (2.2281, 5.119)
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if df <= 0 or math.isnan(df):
        return float("nan")
    if math.isinf(df) or df > 1e7:
        return norm_ppf(p)
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    if p == 0.5:
        return 0.0
    q = 1.0 - p
    lo, hi = 0.0, math.inf  # the root lies in [lo, hi]
    t = max(_t_start(p, df), 1e-12)
    for _ in range(100):
        f = _t_tail(t, df) - q  # decreasing in t
        if f > 0:
            lo = t
        else:
            hi = t
        step = f / _t_pdf(t, df)
        nxt = t + step
        if not (lo < nxt < hi):  # outside the bracket: bisect (or double while unbounded)
            nxt = 2 * lo + 1.0 if math.isinf(hi) else (lo + hi) / 2
        if abs(nxt - t) <= 1e-13 * max(1.0, t):
            return nxt
        t = nxt
    return t


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level}


@dataclass(frozen=True)
class Summary:
    """Sample size, mean and unbiased variance of one sample."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, values: np.ndarray | list[float]) -> Summary:
        v = np.asarray(values, dtype=np.float64)
        n = int(v.size)
        if n == 0:
            return cls(0, float("nan"), float("nan"))
        return cls(n, float(v.mean()), float(v.var(ddof=1)) if n > 1 else float("nan"))

    @property
    def se(self) -> float:
        return math.sqrt(self.var / self.n) if self.n > 0 else float("nan")

    @property
    def has_variance(self) -> bool:
        """At least two observations and a finite variance: enough for an interval."""
        return self.n >= 2 and math.isfinite(self.var)


def _nan_interval(level: float, estimate: float = float("nan")) -> Interval:
    return Interval(estimate, float("nan"), float("nan"), level)


def mean_interval(s: Summary, level: float = 0.95) -> Interval:
    """Student-t interval of a mean; NaN bounds with fewer than two observations."""
    if not s.has_variance:
        return _nan_interval(level, s.mean)
    h = t_ppf(0.5 + level / 2, s.n - 1) * s.se
    return Interval(s.mean, s.mean - h, s.mean + h, level)


def welch_interval(treat: Summary, control: Summary, level: float = 0.95) -> Interval:
    """Interval of ``treat.mean − control.mean`` by Welch's t with Satterthwaite df."""
    diff = treat.mean - control.mean
    if not (treat.has_variance and control.has_variance):
        return _nan_interval(level, diff)
    v1, v0 = treat.var / treat.n, control.var / control.n
    se2 = v1 + v0
    if se2 == 0.0:
        return Interval(diff, diff, diff, level)
    df = se2**2 / (v1**2 / (treat.n - 1) + v0**2 / (control.n - 1))
    h = t_ppf(0.5 + level / 2, df) * math.sqrt(se2)
    return Interval(diff, diff - h, diff + h, level)


def ratio_change(treat: Summary, control: Summary, level: float = 0.95) -> Interval:
    """Relative reduction ``1 − treat.mean / control.mean`` with a delta-method interval.

    The interval is built for log(m₁/m₀), whose variance is approximately
    var₁/(n₁m₁²) + var₀/(n₀m₀²), and mapped back, so it stays asymmetric and
    the ratio positive. Means must be positive (e.g. normalised costs).
    """
    if not (treat.mean > 0 and control.mean > 0):
        return _nan_interval(level)
    est = 1.0 - treat.mean / control.mean
    if not (treat.has_variance and control.has_variance):
        return _nan_interval(level, est)
    se = math.sqrt(
        treat.var / (treat.n * treat.mean**2) + control.var / (control.n * control.mean**2)
    )
    z = norm_ppf(0.5 + level / 2)
    log_r = math.log(treat.mean / control.mean)
    return Interval(est, 1.0 - math.exp(log_r + z * se), 1.0 - math.exp(log_r - z * se), level)


def bootstrap_interval(
    treat: np.ndarray,
    control: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic(treat_means, control_means)``.

    ``statistic`` receives the resampled means of each group as arrays of length
    ``n_boot`` (vectorised), e.g. ``lambda t, c: 1 - t / c`` for a relative change.
    """
    rng = np.random.default_rng(rng)
    t = np.asarray(treat, dtype=np.float64)
    c = np.asarray(control, dtype=np.float64)
    if t.size < 2 or c.size < 2:
        return _nan_interval(level)
    est = float(statistic(np.array([t.mean()]), np.array([c.mean()]))[0])
    # resampled means: multinomial counts are cheaper than index matrices for large n
    tm = rng.multinomial(t.size, np.full(t.size, 1 / t.size), size=n_boot) @ t / t.size
    cm = rng.multinomial(c.size, np.full(c.size, 1 / c.size), size=n_boot) @ c / c.size
    stats = statistic(tm, cm)
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return Interval(est, float(lo), float(hi), level)


def non_inferior(diff: Interval, margin: float) -> bool | None:
    """True when the lower bound of ``treat − control`` is above ``−margin``.

    None when the interval is undefined (too little data). Higher is better.
    """
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0 (a tolerated loss), got {margin}")
    if not math.isfinite(diff.low):
        return None
    return diff.low > -margin


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or ±inf float replaced by None, through dicts, lists and
    tuples (tuples become lists), so that ``json.dumps(..., allow_nan=False)`` accepts it.

    >>> json_safe({"low": float("nan"), "bounds": (1.0, float("inf")), "n": 3})
    {'low': None, 'bounds': [1.0, None], 'n': 3}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
