"""PNG of a cohort report (matplotlib, the optional ``plot`` extra, imported lazily)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from policy_store import RLCommonsError

if TYPE_CHECKING:
    from ._report import CohortReport


class PlotUnavailableError(RLCommonsError, RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailableError(
            "plotting needs matplotlib: pip install 'rl-commons[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def _err(iv) -> tuple[float, float]:
    if not math.isfinite(iv.low):
        return 0.0, 0.0
    return iv.estimate - iv.low, iv.high - iv.estimate


def plot_report(report: CohortReport, path: str) -> str:
    """Left: each metric's mean per cohort with intervals. Right: rl − baseline with intervals,
    and the quality margin as a dashed line."""
    plt = _pyplot()
    names = list(report.metrics)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    for j, (cohort, label, color) in enumerate(
        (("rl", "learned (rl)", "#2a7ab9"), ("baseline", "baseline", "#9a9a9a"))
    ):
        means, errs = [], [[], []]
        for m in names:
            c = report.metrics[m]
            iv = c.rl_mean if cohort == "rl" else c.baseline_mean
            means.append(iv.estimate if math.isfinite(iv.estimate) else 0.0)
            lo, hi = _err(iv)
            errs[0].append(lo)
            errs[1].append(hi)
        xs = [i + (j - 0.5) * width for i in range(len(names))]
        ax1.bar(xs, means, width, yerr=errs, capsize=3, label=label, color=color)
    ax1.set_xticks(range(len(names)), names)
    ax1.set_ylabel("mean (0..1)")
    ax1.set_title(f"cohort means ({report.level:.0%} intervals)")
    ax1.legend(loc="upper right", fontsize=8)

    diffs = [report.metrics[m].difference for m in names]
    ys = list(range(len(names)))
    est = [d.estimate if math.isfinite(d.estimate) else 0.0 for d in diffs]
    errs = list(zip(*[_err(d) for d in diffs], strict=True)) if diffs else [[], []]
    ax2.errorbar(est, ys, xerr=errs, fmt="o", color="#2a7ab9", capsize=4)
    ax2.axvline(0.0, color="black", lw=0.8)
    qi = names.index("quality")
    ax2.plot(
        [-report.margin] * 2,
        [qi - 0.35, qi + 0.35],
        "r--",
        lw=1.2,
        label=f"quality margin −{report.margin:g}",
    )
    ax2.set_yticks(ys, names)
    ax2.invert_yaxis()
    ax2.set_xlabel("rl − baseline")
    verdict = {True: "non-inferior", False: "NOT non-inferior", None: "undecided"}[
        report.quality_non_inferior
    ]
    red = report.cost_reduction
    red_txt = f"cost −{red.estimate:.1%}" if math.isfinite(red.estimate) else "cost n/a"
    ax2.set_title(f"differences: quality {verdict}, {red_txt}")
    ax2.legend(loc="lower right", fontsize=8)
    title = f"policy {report.policy}" if report.policy else "cohort report"
    n = ", ".join(f"{c} {k:,}" for c, k in report.counts.items() if k)
    fig.suptitle(f"{title} — {n}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
