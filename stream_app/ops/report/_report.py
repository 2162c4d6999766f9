"""The cohort report: the learned policy's cohort ("rl") against the baseline cohort.

For reward, quality, cost and latency: each cohort's mean with its interval, the
difference rl − baseline with a Welch interval, the relative cost (and latency)
reduction with a delta-method interval, the error rates, and a non-inferiority
verdict for quality: the learned policy is non-inferior when the lower bound of
(quality_rl − quality_baseline) is above −margin.

A component that is missing from an outcome or was filled with the reward spec's
default (``components.defaulted``) is left out of that component's statistics —
a defaulted quality is not a measured one. Shadow-cohort rewards are counted but
not compared (they were served by the baseline).

Build from events with ``build_report`` or from the Redis per-minute aggregates
with ``build_report_from_aggregates`` (sums only, hence conservative intervals).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policy_store.evaluation import (
    Interval,
    Summary,
    json_safe,
    mean_interval,
    non_inferior,
    ratio_change,
    welch_interval,
)

if TYPE_CHECKING:
    from ._constraint import ConstraintCheck

METRICS = ("reward", "quality", "cost", "latency")
LOWER_IS_BETTER = frozenset({"cost", "latency"})
LEARNED, BASELINE, SHADOW = "rl", "baseline", "shadow"


@dataclass(frozen=True)
class MetricComparison:
    """One metric in both cohorts."""

    metric: str
    rl: Summary
    baseline: Summary
    rl_mean: Interval
    baseline_mean: Interval
    difference: Interval  # rl − baseline
    reduction: Interval | None = None  # 1 − rl/baseline, for cost and latency

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rl": {"n": self.rl.n, **json_safe(self.rl_mean.to_dict())},
            "baseline": {"n": self.baseline.n, **json_safe(self.baseline_mean.to_dict())},
            "difference": json_safe(self.difference.to_dict()),
        }
        if self.reduction is not None:
            out["reduction"] = json_safe(self.reduction.to_dict())
        return out


@dataclass(frozen=True)
class CohortReport:
    """Learned vs baseline cohort; build it with ``build_report``."""

    policy: str | None
    margin: float
    level: float
    counts: Mapping[str, int]
    metrics: Mapping[str, MetricComparison]
    errors: MetricComparison
    arm_share: Mapping[str, Mapping[str, float]]
    source: str = "events"
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the policy's objective against the learned cohort (``with_constraint``); None: weighted
    constraint: ConstraintCheck | None = None

    # -- headline numbers -------------------------------------------------------------------
    @property
    def cost_reduction(self) -> Interval:
        """1 − cost_rl / cost_baseline (0.2 = the learned cohort spends 20% less)."""
        red = self.metrics["cost"].reduction
        assert red is not None
        return red

    @property
    def quality_difference(self) -> Interval:
        return self.metrics["quality"].difference

    @property
    def quality_non_inferior(self) -> bool | None:
        """True / False, or None when there is too little data for an interval."""
        return non_inferior(self.quality_difference, self.margin)

    # -- rendering ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "source": self.source,
            "level": self.level,
            "margin": self.margin,
            "counts": dict(self.counts),
            "metrics": {m: c.to_dict() for m, c in self.metrics.items()},
            "error_rate": self.errors.to_dict(),
            "cost_reduction": json_safe(self.cost_reduction.to_dict()),
            "quality_non_inferior": self.quality_non_inferior,
            "arm_share": {k: dict(v) for k, v in self.arm_share.items()},
            "notes": list(self.notes),
            "constraint": self.constraint.to_dict() if self.constraint is not None else None,
        }

    def to_text(self) -> str:
        pct = f"{self.level:.0%}"
        title = f"Cohort report for policy {self.policy}" if self.policy else "Cohort report"
        lines = [
            f"{title}  (source: {self.source})",
            "rewards: " + ", ".join(f"{c} {self.counts.get(c, 0):,}" for c in _COHORTS),
            "",
            f"{'metric':<9}{'learned (rl)':>22}{'baseline':>22}   rl − baseline ({pct} interval)",
        ]
        for name, c in [*self.metrics.items(), ("errors", self.errors)]:
            fmt = _fmt_pct if name == "errors" else _fmt_num
            lines.append(
                f"{name:<9}{_fmt_mean(c.rl_mean, c.rl.n, fmt):>22}"
                f"{_fmt_mean(c.baseline_mean, c.baseline.n, fmt):>22}   "
                f"{_fmt_interval(c.difference, fmt, signed=True)}"
            )
        lines.append("")
        for metric in ("cost", "latency"):
            red = self.metrics[metric].reduction
            if red is not None and math.isfinite(red.estimate):
                line = f"{metric} reduction: {red.estimate:.1%}  [{red.low:.1%}, {red.high:.1%}]"
                if metric == "cost":
                    line += f"  ({pct} interval; negative = the learned cohort costs more)"
                lines.append(line)
            else:
                lines.append(f"{metric} reduction: n/a (needs both cohorts with {metric} > 0)")
        verdict = self.quality_non_inferior
        low = self.quality_difference.low
        if verdict is None:
            lines.append(
                f"quality non-inferiority at margin {self.margin:g}: UNDECIDED "
                "(too few quality scores in one of the cohorts)"
            )
        else:
            sign = ">" if verdict else "≤"
            lines.append(
                f"quality non-inferiority at margin {self.margin:g}: "
                f"{'PASS' if verdict else 'FAIL'} — lower bound of the difference "
                f"{low:+.4f} {sign} -{self.margin:g}"
            )
        if self.constraint is not None:
            lines += ["", self.constraint.to_text()]
        lines.append("")
        lines.append("arm mix:")
        for cohort in (LEARNED, BASELINE):
            share = self.arm_share.get(cohort) or {}
            mix = ", ".join(f"{a} {s:.0%}" for a, s in sorted(share.items(), key=lambda t: -t[1]))
            lines.append(f"  {cohort:<9}{mix or '-'}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Write a PNG: cohort means with intervals, and the differences with the margin."""
        from ._plot import plot_report

        return plot_report(self, path)


_COHORTS = (LEARNED, BASELINE, SHADOW)


def _fmt_num(v: float, signed: bool = False) -> str:
    return "n/a" if not math.isfinite(v) else (f"{v:+.4f}" if signed else f"{v:.4f}")


def _fmt_pct(v: float, signed: bool = False) -> str:
    return "n/a" if not math.isfinite(v) else (f"{v:+.2%}" if signed else f"{v:.2%}")


def _fmt_mean(iv: Interval, n: int, fmt) -> str:
    if n == 0:
        return "-"
    if not math.isfinite(iv.low):
        return fmt(iv.estimate)
    return f"{fmt(iv.estimate)} ±{fmt(iv.half_width).lstrip('+')}"


def _fmt_interval(iv: Interval, fmt, signed: bool = False) -> str:
    if not math.isfinite(iv.estimate):
        return "n/a"
    if not math.isfinite(iv.low):
        return f"{fmt(iv.estimate, signed)}  (interval n/a)"
    return f"{fmt(iv.estimate, signed)}  [{fmt(iv.low, signed)}, {fmt(iv.high, signed)}]"


# -- building from events ----------------------------------------------------------------------
def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _values(rewards: Sequence[Any]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {
        c: {m: [] for m in (*METRICS, "errors")} for c in _COHORTS
    }
    for r in rewards:
        cohort = _get(r, "cohort")
        if cohort not in out:
            continue
        vals = out[cohort]
        vals["reward"].append(float(_get(r, "reward")))
        comp = _get(r, "components") or {}
        defaulted = set(_get(comp, "defaulted", ()) or ())
        for m in ("quality", "cost", "latency"):
            v = _get(comp, m)
            if v is not None and m not in defaulted:
                vals[m].append(float(v))
        vals["errors"].append(1.0 if _get(comp, "error", False) else 0.0)
    return out


def build_report(
    rewards: Iterable[Any],
    *,
    margin: float = 0.01,
    level: float = 0.95,
    policy: str | None = None,
    source: str = "events",
) -> CohortReport:
    """Compare the learned ("rl") and baseline cohorts of ``rewards``.

    ``rewards`` are ``producers.RewardEvent`` objects or their dicts. With
    ``policy`` given, rewards of other policies are ignored. ``margin`` is the
    tolerated quality loss on the 0..1 scale (0.01 = one percentage point).
    """
    items = [r for r in rewards if policy is None or _get(r, "policy") == policy]
    vals = _values(items)
    summaries = {
        c: {m: Summary.of(v) for m, v in by_metric.items()} for c, by_metric in vals.items()
    }
    share: dict[str, Counter] = {c: Counter() for c in _COHORTS}
    for r in items:
        if _get(r, "cohort") in share:
            share[_get(r, "cohort")][_get(r, "arm")] += 1
    counts = {c: len(vals[c]["reward"]) for c in _COHORTS}
    return _assemble(
        summaries, counts, share, margin=margin, level=level, policy=policy, source=source
    )


def _assemble(
    summaries: Mapping[str, Mapping[str, Summary]],
    counts: Mapping[str, int],
    share: Mapping[str, Counter],
    *,
    margin: float,
    level: float,
    policy: str | None,
    source: str,
    notes: Sequence[str] = (),
) -> CohortReport:
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0 (a tolerated quality loss), got {margin}")
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), e.g. 0.95; got {level}")

    def compare(m: str) -> MetricComparison:
        rl, base = summaries[LEARNED][m], summaries[BASELINE][m]
        return MetricComparison(
            metric=m,
            rl=rl,
            baseline=base,
            rl_mean=mean_interval(rl, level),
            baseline_mean=mean_interval(base, level),
            difference=welch_interval(rl, base, level),
            reduction=ratio_change(rl, base, level) if m in LOWER_IS_BETTER else None,
        )

    notes = list(notes)
    if counts[LEARNED] == 0 and counts[BASELINE] == 0:
        notes.append(
            "no rewards of the learned or baseline cohort: check the policy name and the topic "
            "prefix, and that the stream app is running"
        )
    elif counts[LEARNED] == 0 or counts[BASELINE] == 0:
        missing = BASELINE if counts[BASELINE] == 0 else LEARNED
        hint = (
            "set rollout_fraction below 1 so some traffic stays on the baseline"
            if missing == BASELINE
            else "set rollout_fraction above 0 (and enabled) so some traffic uses the policy"
        )
        notes.append(f"no rewards in the {missing!r} cohort yet: {hint}")
    elif min(counts[LEARNED], counts[BASELINE]) < 30:
        notes.append("fewer than 30 rewards in a cohort: intervals are rough")
    arm_share = {
        c: {a: k / total for a, k in share[c].items()}
        for c in (LEARNED, BASELINE)
        if (total := sum(share[c].values()))
    }
    return CohortReport(
        policy=policy,
        margin=margin,
        level=level,
        counts=dict(counts),
        metrics={m: compare(m) for m in METRICS},
        errors=compare("errors"),
        arm_share=arm_share,
        source=source,
        notes=tuple(notes),
    )


# -- building from per-minute aggregates -------------------------------------------------------
def build_report_from_aggregates(
    buckets: Iterable[Any],
    *,
    margin: float = 0.01,
    level: float = 0.95,
    policy: str | None = None,
    source: str = "redis aggregates",
) -> CohortReport:
    """The report from ``stream_app.aggregates.read_buckets`` output (sums per cohort and arm).

    The aggregates keep sums, not sums of squares, so variances are bounded
    instead of estimated: a metric in [0, 1] with mean m has variance at most
    m(1 − m). The intervals are therefore conservative (wider than from events).
    The aggregates count all rewards but sum quality, cost and latency only where
    present, so a cohort with missing components shows lower means for them;
    prefer the events (``--source kafka``) when components are often missing.
    """
    sums: dict[str, dict[str, float]] = {
        c: dict.fromkeys((*METRICS, "errors", "n"), 0.0) for c in _COHORTS
    }
    share: dict[str, Counter] = {c: Counter() for c in _COHORTS}
    for b in buckets:
        for (cohort, arm), cell in b.cells.items():
            if cohort not in sums:
                continue
            for m in sums[cohort]:
                sums[cohort][m] += float(getattr(cell, m))
            share[cohort][arm] += float(cell.n)
    summaries: dict[str, dict[str, Summary]] = {}
    for c, s in sums.items():
        n = int(round(s["n"]))
        summaries[c] = {}
        for m in (*METRICS, "errors"):
            mean = s[m] / n if n else float("nan")
            var = _bounded_var(mean, n) if n else float("nan")
            summaries[c][m] = Summary(n, mean, var)
    counts = {c: summaries[c]["reward"].n for c in _COHORTS}
    notes = [
        "intervals from aggregates are conservative: variances bounded by m(1 − m) "
        "(use --source kafka for intervals estimated from every reward)"
    ]
    return _assemble(
        summaries,
        counts,
        share,
        margin=margin,
        level=level,
        policy=policy,
        source=source,
        notes=notes,
    )


def _bounded_var(mean: float, n: int) -> float:
    if n < 2 or not 0.0 <= mean <= 1.0:
        return float("nan")
    # the largest variance of a [0, 1] variable with this mean, as an unbiased estimate
    return mean * (1.0 - mean) * n / (n - 1)
