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

ParetoBandit's pacer underspends B, so the budget is also compared at matched spend
(``_pareto_runs.match_spend``): ParetoBandit with its budget raised until it spends
what ours spends at B (the run closest in spend, and its best quality among the runs
spending no more than ours + 2 %), and ours with ``max_cost`` = what ParetoBandit
spends at B.
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
from _pareto_runs import closest, match_spend, play_pareto  # noqa: E402
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


# -- one world × seed ----------------------------------------------------------------------------
@dataclass
class Run:
    """What one learner did on one world × seed, over the second half (expected values)."""

    quality: float
    cost: float
    non_inferior: bool | None = None


@dataclass
class Matched:
    """The budget at matched spend: ParetoBandit with its budget raised until it spends
    what ours spends at B, and ours with its budget set to what ParetoBandit spends at B."""

    pb_budget: float  # the budget ParetoBandit was given to spend what ours spends
    pb: Run  # ParetoBandit at that budget (of the budgets tried, its spend closest to ours)
    pb_best: Run | None  # its best quality among the runs spending ≤ ours + 2 %
    tried: int  # ParetoBandit runs in the search, the one at B included
    ours_at_pb: Run  # ours with max_cost = ParetoBandit's spend at B


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
    matched: Matched | None = None  # budget: ours and ParetoBandit at matched spend


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
    ours = run(budget_sel and budget_sel.play(draw, world, task.rounds))
    pb = run(play_pareto(draw, world, task.rounds, seed, task.budget))
    task.runs["budget"] = {
        OURS_BUDGET: ours,
        WEIGHTED: weighted,
        PB_BUDGET: pb,
        ORACLE: Run(o_budget.quality, o_budget.cost),
    }
    if ours is not None and pb is not None:
        tried = match_spend(
            lambda b: run(play_pareto(draw, world, task.rounds, seed, b)),
            task.budget,
            pb,
            ours.cost,
        )
        within = [r for _, r in tried if r.cost <= 1.02 * ours.cost]
        best = max(within, key=lambda r: r.quality) if within else None
        at_pb = objective_selector(world, seed, kind="budget", max_cost=pb.cost, **extra)
        at_pb_run = run(at_pb.play(draw, world, task.rounds))
        task.matched = Matched(*closest(tried, ours.cost), best, len(tried), at_pb_run)
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


def matched_table(tasks: list[Task]) -> str:
    """Ours against ParetoBandit at B and at matched spend, per world × seed."""
    lines = [
        "| world | seed | ours at B: cost / B, quality | ParetoBandit at B: cost / B, quality "
        "| ParetoBandit at our spend: its budget / B (runs tried), cost / B, quality | ours − it "
        "| its best quality at ≤ our spend | ours at ParetoBandit's spend: cost / B, quality "
        "| ours − ParetoBandit at B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        m, ours, pb = t.matched, t.runs["budget"][OURS_BUDGET], t.runs["budget"][PB_BUDGET]
        if m is None:
            lines.append(f"| {t.world} | {t.seed} | not available | | | | | | |")
            continue
        B = t.budget
        lines.append(
            f"| {t.world} | {t.seed} | {ours.cost / B:.3f}, {ours.quality:.4f} "
            f"| {pb.cost / B:.3f}, {pb.quality:.4f} "
            f"| {m.pb_budget / B:.2f} ({m.tried}), {m.pb.cost / B:.3f}, {m.pb.quality:.4f} "
            f"| {ours.quality - m.pb.quality:+.4f} "
            f"| {'none' if m.pb_best is None else f'{m.pb_best.quality:.4f}'} "
            f"| {m.ours_at_pb.cost / B:.3f}, {m.ours_at_pb.quality:.4f} "
            f"| {m.ours_at_pb.quality - pb.quality:+.4f} |"
        )
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    return f"{min(values):.3f}–{max(values):.3f}"


def matched_verdicts(tasks: list[Task]) -> str:
    """Ours ahead of ParetoBandit on quality at equal or lower cost, three ways."""
    done = [t for t in tasks if t.matched is not None]
    if not done:
        return "- Budget against ParetoBandit: not available in this build."
    n = len(done)
    ours = [t.runs["budget"][OURS_BUDGET] for t in done]
    pb = [t.runs["budget"][PB_BUDGET] for t in done]
    mpb = [t.matched.pb for t in done]
    at_pb = [t.matched.ours_at_pb for t in done]
    spend = [p.cost / o.cost for o, p in zip(ours, mpb, strict=True)]
    d_matched = [o.quality - p.quality for o, p in zip(ours, mpb, strict=True)]
    d_at_pb = [o.quality - p.quality for o, p in zip(at_pb, pb, strict=True)]
    best = [(o, t.matched.pb_best) for o, t in zip(ours, done, strict=True) if t.matched.pb_best]

    def ahead(a: list[Run], b: list[Run], slack: float) -> int:
        pairs = zip(a, b, strict=True)
        return sum(x.quality > y.quality and x.cost <= y.cost * slack for x, y in pairs)

    return (
        f"- Budget, both at B: ours higher quality than ParetoBandit in "
        f"{sum(o.quality > p.quality for o, p in zip(ours, pb, strict=True))}/{n} runs, at no "
        f"more than its cost (+2 %) in {ahead(ours, pb, 1.02)}/{n} (its spend "
        f"{_span([p.cost / t.budget for p, t in zip(pb, done, strict=True)])} × B, ours "
        f"{_span([o.cost / t.budget for o, t in zip(ours, done, strict=True)])} × B).\n"
        f"- Budget at matched spend, ParetoBandit's budget raised until it spends what ours "
        f"spends (its spend {min(spend):.3f}–{max(spend):.3f} × ours): ours higher quality in "
        f"{sum(d > 0 for d in d_matched)}/{n} runs, at no more than its cost (+2 %) in "
        f"{ahead(ours, mpb, 1.02)}/{n}; ours − ParetoBandit {np.mean(d_matched):+.4f} on "
        f"average ({min(d_matched):+.4f} to {max(d_matched):+.4f}); above the best of its "
        f"runs spending no more than ours (+2 %) in {sum(b.quality < o.quality for o, b in best)}"
        f"/{len(best)} runs where it had one.\n"
        f"- Budget at ParetoBandit's spend, ours with max_cost = what ParetoBandit spends at B: "
        f"ours higher quality in {sum(d > 0 for d in d_at_pb)}/{n} runs, at no more than its "
        f"cost in {ahead(at_pb, pb, 1.0)}/{n}; ours − ParetoBandit {np.mean(d_at_pb):+.4f} on "
        f"average ({min(d_at_pb):+.4f} to {max(d_at_pb):+.4f})."
    )


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
        out.append(line + ".")
    out.append(matched_verdicts(tasks))
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
        f"{budget_table(tasks)}\n\n# Budget against ParetoBandit at matched spend\n\n"
        f"{matched_table(tasks)}\n\n# Acceptance figures\n\n{verdicts(tasks, args.margin)}\n"
    )
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
