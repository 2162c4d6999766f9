"""Constrained objectives: a quality floor and a budget, in-process, against exact oracles.

Every learner faces the same requests (``benchmarks/_worlds.py``: five providers,
misspecified and drifting worlds, quality / dollars / latency per request) over
several seeds. Measured over the second half of each stream, with expected values
(noise removed):

* quality floor (``Objective(kind="quality_floor", quality_margin=m)``, relative to
  the baseline provider the static rule sends everything to): mean quality minus
  the floor (the baseline's mean quality on the same requests − m), the cost cut
  against the baseline and against the cut of the exact oracle, and whether the
  report's non-inferiority test (Welch interval of quality served − the baseline's
  quality on the same requests, lower bound above −m) passes;
* budget (``Objective(kind="budget", max_cost=B)`` dollars per request): mean cost
  against B and mean quality against the exact oracle's.

    python benchmarks/bench_constrained.py                 # 4 worlds × 3 seeds
    python benchmarks/bench_constrained.py --quick --out /tmp/constrained.md

Rows: our constrained objective (``ProviderSelector(..., objective=Objective(...),
baseline_arm=...)``; "not available" in a build without it), the weighted default
(a plain ``ProviderSelector`` with the default reward weights), ParetoBandit
(``paretobandit``, ``pip install .[bench]``: its budget pacer for the budget, its
default cost penalty for the floor) and the oracle (``_worlds``: the per-request
Lagrangian argmax with the multiplier found by bisection).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import command_line, emit  # noqa: E402
from _worlds import WORLDS, Draw, World, budget_oracle, features, quality_floor_oracle  # noqa: E402

from policy_store.evaluation import Summary, non_inferior, welch_interval  # noqa: E402
from producers import ProviderSelector  # noqa: E402

OURS_FLOOR = "constrained objective (quality floor)"
OURS_BUDGET = "constrained objective (budget)"
WEIGHTED = "weighted default"
PB_DEFAULT = "ParetoBandit (default cost penalty 0.3)"
PB_BUDGET = "ParetoBandit (budget pacer)"
ORACLE = "oracle"


# -- learners ------------------------------------------------------------------------------------
class Selector:
    """A ``ProviderSelector`` in-process, fed the request and the outcome in dollars / ms."""

    def __init__(self, world: World, seed: int, **kwargs) -> None:
        self.arms = world.arms
        self.selector = ProviderSelector(
            providers=list(world.arms),
            feature_fn=features,
            n_features=world.n_features,
            seed=seed,
            reward_spec=world.reward_spec(),
            **kwargs,
        )

    def play(self, draw: Draw, world: World, rounds: int) -> np.ndarray:
        served = np.empty(rounds, dtype=int)
        sel = self.selector
        for t in range(rounds):
            request = draw.request(t)
            name = sel.select_provider(request)
            a = self.arms.index(name)
            served[t] = a
            outcome = {
                "quality": float(draw.quality[t, a]),
                "cost": float(draw.cost[t, a]),
                "latency": float(draw.latency[t, a]),
            }
            sel.update_from_response(request, name, outcome)
        return served


def objective_selector(world: World, seed: int, **objective) -> Selector | None:
    """Our selector with a constrained objective, or None when this build has none."""
    try:
        from policy_store import Objective
    except ImportError:
        return None
    if "objective" not in inspect.signature(ProviderSelector).parameters:
        return None
    return Selector(world, seed, objective=Objective(**objective), baseline_arm=world.baseline)


def play_pareto(draw: Draw, world: World, rounds: int, seed: int, budget: float | None):
    """ParetoBandit on the stream (None when ``paretobandit`` is not installed)."""
    try:
        from _peers import ParetoBandit
    except ImportError:
        return None
    try:
        learner = ParetoBandit(world.prices_at(0, rounds), world.n_features, seed, budget)
    except ImportError:
        return None
    served = np.empty(rounds, dtype=int)
    change_at = sorted({int(c.at * rounds) for c in world.changes})
    for t in range(rounds):
        if t in change_at:
            learner.set_prices(world.prices_at(t, rounds))
        a = served[t] = learner.select(draw.contexts[t])
        learner.learn(draw.quality[t, a], draw.cost[t, a])
    return served


# -- one world × seed ----------------------------------------------------------------------------
@dataclass
class Run:
    """What one learner did on one world × seed, over the second half (expected values)."""

    quality: float
    cost: float
    non_inferior: bool | None = None


@dataclass
class Task:
    world: str
    seed: int
    rounds: int
    margin: float
    budget: float
    options: tuple[tuple[str, float], ...] = ()  # extra Objective fields (--dual-step, ...)
    floor: float = 0.0
    base_cost: float = 0.0
    runs: dict[str, dict[str, Run]] = field(default_factory=dict)  # objective -> learner -> run


def _run(draw: Draw, served: np.ndarray | None, baseline: int, margin: float) -> Run | None:
    if served is None:
        return None
    h = slice(len(draw) // 2, len(draw))
    rows = np.arange(len(draw))[h]
    arms = served[h]
    diff = welch_interval(
        Summary.of(draw.quality[rows, arms]), Summary.of(draw.quality[rows, baseline])
    )
    return Run(
        float(draw.eq[rows, arms].mean()),
        float(draw.ec[rows, arms].mean()),
        non_inferior(diff, margin),
    )


def run_task(task: Task) -> Task:
    world = WORLDS[task.world]
    draw = world.draw(task.rounds, task.seed)
    seed = 10_000 + task.seed
    b = world.arms.index(world.baseline)
    h = slice(task.rounds // 2, task.rounds)
    eq, ec = draw.eq[h], draw.ec[h]
    task.floor = float(eq[:, b].mean()) - task.margin
    task.base_cost = float(ec[:, b].mean())

    def run(served):
        return _run(draw, served, b, task.margin)

    weighted = run(Selector(world, seed).play(draw, world, task.rounds))
    extra = dict(task.options)
    floor_sel = objective_selector(
        world, seed, kind="quality_floor", quality_margin=task.margin, **extra
    )
    budget_sel = objective_selector(world, seed, kind="budget", max_cost=task.budget, **extra)
    o_floor = quality_floor_oracle(eq, ec, task.floor)
    o_budget = budget_oracle(eq, ec, task.budget)
    task.runs["floor"] = {
        OURS_FLOOR: run(floor_sel and floor_sel.play(draw, world, task.rounds)),
        WEIGHTED: weighted,
        PB_DEFAULT: run(play_pareto(draw, world, task.rounds, seed, None)),
        ORACLE: Run(o_floor.quality, o_floor.cost),
    }
    task.runs["budget"] = {
        OURS_BUDGET: run(budget_sel and budget_sel.play(draw, world, task.rounds)),
        WEIGHTED: weighted,
        PB_BUDGET: run(play_pareto(draw, world, task.rounds, seed, task.budget)),
        ORACLE: Run(o_budget.quality, o_budget.cost),
    }
    return task


# -- tables --------------------------------------------------------------------------------------
def _cells(values: list[float], worst, fmt: str) -> str:
    return f"{np.mean(values):{fmt}} ({worst(values):{fmt}})"


def _by_world(tasks: list[Task], objective: str) -> dict[str, dict[str, list[Run | None]]]:
    out: dict[str, dict[str, list[Run | None]]] = {}
    for task in tasks:
        for learner, run in task.runs[objective].items():
            out.setdefault(task.world, {}).setdefault(learner, []).append(run)
    return out


def floor_table(tasks: list[Task], margin: float) -> str:
    lines = [
        "| world | learner | quality − floor: mean (worst seed) | cost cut | oracle's cut "
        f"| cut / oracle's | non-inferior at {margin:g} |",
        "|---|---|---|---|---|---|---|",
    ]
    for world, learners in _by_world(tasks, "floor").items():
        mine = [t for t in tasks if t.world == world]
        oracle_cut = np.mean([1 - t.runs["floor"][ORACLE].cost / t.base_cost for t in mine])
        for learner, runs in learners.items():
            if any(r is None for r in runs):
                lines.append(f"| {world} | {learner} | not available | | | | |")
                continue
            gaps = [r.quality - t.floor for r, t in zip(runs, mine, strict=True)]
            cut = np.mean([1 - r.cost / t.base_cost for r, t in zip(runs, mine, strict=True)])
            verdicts = [r.non_inferior for r in runs]
            ni = "—" if learner == ORACLE else f"{sum(v is True for v in verdicts)}/{len(runs)}"
            lines.append(
                f"| {world} | {learner} | {_cells(gaps, min, '+.4f')} | {cut:.1%} "
                f"| {oracle_cut:.1%} | {cut / oracle_cut:.2f} | {ni} |"
            )
    return "\n".join(lines)


def budget_table(tasks: list[Task]) -> str:
    lines = [
        "| world | budget $/request | learner | cost / budget: mean (worst seed) | quality "
        "| quality − oracle's: mean (worst seed) |",
        "|---|---|---|---|---|---|",
    ]
    for world, learners in _by_world(tasks, "budget").items():
        mine = [t for t in tasks if t.world == world]
        oracle = [t.runs["budget"][ORACLE] for t in mine]
        for learner, runs in learners.items():
            if any(r is None for r in runs):
                lines.append(f"| {world} | {mine[0].budget:g} | {learner} | not available | | |")
                continue
            ratio = [r.cost / t.budget for r, t in zip(runs, mine, strict=True)]
            gap = [r.quality - o.quality for r, o in zip(runs, oracle, strict=True)]
            lines.append(
                f"| {world} | {mine[0].budget:g} | {learner} | {_cells(ratio, max, '.3f')} "
                f"| {np.mean([r.quality for r in runs]):.4f} | {_cells(gap, min, '+.4f')} |"
            )
    return "\n".join(lines)


def verdicts(tasks: list[Task], margin: float) -> str:
    """The issue's acceptance figures for our constrained objectives (and the weighted
    default, for comparison)."""
    n = len(tasks)
    out = []
    for learner in (OURS_FLOOR, WEIGHTED):
        runs = [(t, t.runs["floor"][learner]) for t in tasks]
        if any(r is None for _, r in runs):
            out.append(f"- Quality floor, {learner}: not available in this build.")
            continue
        held = sum(r.quality >= t.floor - 0.005 for t, r in runs)
        ratios = []
        for world in dict.fromkeys(t.world for t in tasks):
            mine = [(t, r) for t, r in runs if t.world == world]
            cut = np.mean([1 - r.cost / t.base_cost for t, r in mine])
            oracle = np.mean([1 - t.runs["floor"][ORACLE].cost / t.base_cost for t, _ in mine])
            ratios.append(cut / oracle)
        ni = sum(r.non_inferior is True for _, r in runs)
        out.append(
            f"- Quality floor, {learner}: quality ≥ floor − 0.005 in {held}/{n} runs; cost cut "
            f"{np.median(ratios):.2f} × the oracle's (median over worlds; target ≥ 0.60); "
            f"non-inferior at margin {margin:g} in {ni}/{n} runs (target ≥ 90 %)."
        )
    for learner in (OURS_BUDGET, WEIGHTED):
        runs = [(t, t.runs["budget"][learner]) for t in tasks]
        if any(r is None for _, r in runs):
            out.append(f"- Budget, {learner}: not available in this build.")
            continue
        under = sum(r.cost <= 1.02 * t.budget for t, r in runs)
        close = sum(r.quality >= t.runs["budget"][ORACLE].quality - 0.02 for t, r in runs)
        line = (
            f"- Budget, {learner}: cost ≤ budget × 1.02 in {under}/{n} runs; quality ≥ the "
            f"oracle's − 0.02 in {close}/{n} runs"
        )
        pb = [t.runs["budget"][PB_BUDGET] for t in tasks]
        if all(p is not None for p in pb):
            pairs = list(zip((r for _, r in runs), pb, strict=True))
            better = sum(r.quality > p.quality for r, p in pairs)
            ahead = sum(r.quality > p.quality and r.cost <= p.cost * 1.02 for r, p in pairs)
            line += (
                f"; higher quality than ParetoBandit in {better}/{n} runs, and at no more than "
                f"its cost (+2 %) in {ahead}/{n}"
            )
        out.append(line + ".")
    return "\n".join(out)


def evaluate(tasks: list[Task], jobs: int) -> list[Task]:
    """Run every world × seed (in ``jobs`` forked processes; results do not depend on it)."""
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(run_task, tasks, chunksize=1)
    return [run_task(t) for t in tasks]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8000, help="requests per stream (default 8000)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per world (default 3)")
    ap.add_argument("--worlds", default=",".join(WORLDS), help=f"from {', '.join(WORLDS)}")
    ap.add_argument("--margin", type=float, default=0.02, help="quality margin (default 0.02)")
    ap.add_argument(
        "--budget-share",
        type=float,
        default=0.3,
        help="budget: this share of the way from the cheapest to the best routing (0.3)",
    )
    ap.add_argument("--dual-step", type=float, help="Objective.dual_step (default: its own)")
    ap.add_argument("--confidence", type=float, help="Objective.confidence (default: its own)")
    ap.add_argument("--quick", action="store_true", help="2000 requests per stream")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)
    rounds = 2000 if args.quick else args.rounds
    names = args.worlds.split(",")
    budgets = {w: WORLDS[w].budget(args.budget_share) for w in names}
    options = tuple(
        (k, v) for k, v in (("dual_step", args.dual_step), ("confidence", args.confidence)) if v
    )
    tasks = [
        Task(w, seed, rounds, args.margin, budgets[w], options)
        for w in names
        for seed in range(args.seeds)
    ]
    t0 = time.perf_counter()
    tasks = evaluate(tasks, args.jobs)
    elapsed = time.perf_counter() - t0
    worlds = "\n".join(f"- `{w}`: {WORLDS[w].description}" for w in names)
    text = (
        f"Command: `{command_line('bench_constrained.py', argv)}`  \n"
        f"{len(names)} worlds × seeds 0..{args.seeds - 1}, {rounds} requests per stream, five "
        f"providers (baseline `frontier`: the best and most expensive), measured over the second "
        f"half with expected values; {elapsed:.0f} s in total.\n\n{worlds}\n\n"
        f"# Quality floor: baseline's quality − {args.margin:g}\n\n"
        f"{floor_table(tasks, args.margin)}\n\n"
        f"# Budget: {args.budget_share:g} of the way from the cheapest to the best routing\n\n"
        f"{budget_table(tasks)}\n\n# Acceptance figures\n\n{verdicts(tasks, args.margin)}\n"
    )
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
