"""The learning curve: rolling mean reward of each cohort over the run, as numbers and a PNG.

``rolling_by_cohort`` is pure numpy; ``plot_learning_curve`` imports matplotlib
only when called (the ``plot`` extra) and draws on the Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurvePoint:
    """One rewarded request: its position in the run, cohort and reward."""

    request: int
    cohort: str
    reward: float


def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start).

    >>> rolling_mean([1.0, 3.0, 5.0], 2).tolist()
    [1.0, 2.0, 4.0]
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def rolling_by_cohort(
    points: Sequence[CurvePoint], window: int = 150
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each cohort: (request positions, trailing mean reward over its last ``window``)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for cohort in sorted({p.cohort for p in points}):
        pts = sorted((p for p in points if p.cohort == cohort), key=lambda p: p.request)
        xs = np.array([p.request for p in pts], dtype=np.int64)
        out[cohort] = (xs, rolling_mean([p.reward for p in pts], window))
    return out


def plot_learning_curve(
    path: str,
    points: Sequence[CurvePoint],
    *,
    oracle: Sequence[tuple[int, float]] = (),
    rollout: Sequence[tuple[int, float]] = (),
    change_at: int | None = None,
    detected_at: int | None = None,
    window: int = 150,
    title: str = "rl-commons demo: reward by cohort",
) -> str:
    """Write the PNG and return its path. ``oracle``: (request, expected reward of the best
    provider); ``rollout``: (request, fraction) steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    colours = {"rl": "tab:green", "baseline": "tab:gray", "shadow": "tab:purple"}
    names = {"rl": "learned (rl) cohort", "baseline": "baseline cohort", "shadow": "shadow"}
    for cohort, (xs, ys) in rolling_by_cohort(points, window).items():
        ax.plot(xs, ys, color=colours.get(cohort), label=names.get(cohort, cohort), lw=1.8)
    if oracle:
        ox = np.array([o[0] for o in oracle])
        oy = rolling_mean([o[1] for o in oracle], window)
        ax.plot(ox, oy, "--", color="tab:blue", lw=1, label="best provider (oracle, expected)")
    marks = ((change_at, "world changed ", ":", "right"), (detected_at, " adapted", "-.", "left"))
    for at, label, style, align in marks:
        if at is not None:
            for a in (ax, ax2):
                a.axvline(at, color="tab:red", ls=style, lw=1)
            y = ax.get_ylim()[0]
            ax.text(at, y, label, color="tab:red", ha=align, va="bottom", fontsize=8)
    ax.set_ylabel(f"mean reward (last {window} of the cohort)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    if rollout:
        rx = [r[0] for r in rollout]
        ry = [r[1] * 100 for r in rollout]
        last = max([p.request for p in points] + rx)
        ax2.step([*rx, last], [*ry, ry[-1]], where="post", color="tab:green")
    ax2.set_ylabel("rollout %")
    ax2.set_ylim(0, 100)
    ax2.set_xlabel("request")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
