"""ParetoBandit on a routing world, and the budget at which it spends what we spend.

ParetoBandit's budget pacer underspends its budget on these worlds (0.7–0.95 × B), so
"higher quality at the same budget" is not "higher quality at the same cost". For a
comparison at matched spend, ``match_spend`` searches the budget handed to ParetoBandit
until its realised spend (second half, expected values) is within ``tolerance`` of a
target spend: a proportional first guess from the run at B (it spends a roughly constant
share of its budget), then interpolation between the closest runs below and above the
target. Every run replays the same requests with the same bandit seed, so the search
moves the budget only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import numpy as np
from _worlds import Draw, World


def play_pareto(
    draw: Draw, world: World, rounds: int, seed: int, budget: float | None
) -> np.ndarray | None:
    """The arms ParetoBandit serves on the stream (None when ``paretobandit`` is not
    installed); list prices are updated at a price change, as an operator would."""
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


class Spent(Protocol):
    cost: float


R = TypeVar("R", bound=Spent)


def match_spend(
    run_at: Callable[[float], R],
    budget: float,
    first: R,
    target: float,
    *,
    grid: tuple[float, ...] = (1.15, 1.3, 1.45, 1.6, 1.8, 2.0),
    tolerance: float = 0.01,
    refine: int = 3,
) -> list[tuple[float, R]]:
    """Every (budget, run) tried to find a budget whose realised spend is within
    ``tolerance`` (relative) of ``target``, ``first`` (the run at ``budget``) included.

    ParetoBandit's spend is not monotone in its budget (at some budgets its pacer locks
    onto a cheap provider and spends a third of it), so the search walks ``grid`` (× the
    budget; its inverses when ``first`` spends more than ``target``) until a run is on
    the other side of the target, then interpolates between the closest runs below and
    above it for at most ``refine`` more runs; it stops as soon as a run is within
    ``tolerance``. Pick from the result with ``closest``.

    >>> class Run:
    ...     def __init__(self, cost): self.cost = cost
    >>> tried = match_spend(lambda b: Run(0.8 * b), 1.0, Run(0.8), 1.0)
    >>> b, r = closest(tried, 1.0)
    >>> round(b, 6), round(r.cost, 6), len(tried)
    (1.25, 1.0, 4)
    >>> b, r = closest(match_spend(lambda b: Run(0.8 * b), 1.5, Run(1.2), 1.0), 1.0)
    >>> round(b, 6), round(r.cost, 6)
    (1.25, 1.0)
    """
    points = [(budget, first)]

    def done() -> bool:
        return abs(closest(points, target)[1].cost / target - 1.0) <= tolerance

    up = first.cost < target
    for factor in grid if up else [1.0 / f for f in grid]:
        if done() or any((r.cost >= target) == up for _, r in points):
            break
        points.append((budget * factor, run_at(budget * factor)))
    for _ in range(refine):
        below = [p for p in points if p[1].cost < target]
        above = [p for p in points if p[1].cost > target]
        if done() or not below or not above:
            break
        (b0, r0) = max(below, key=lambda p: p[1].cost)
        (b1, r1) = min(above, key=lambda p: p[1].cost)
        b = b0 + (target - r0.cost) * (b1 - b0) / (r1.cost - r0.cost)
        points.append((b, run_at(b)))
    return sorted(points, key=lambda p: p[0])


def closest(points: list[tuple[float, R]], target: float) -> tuple[float, R]:
    """The (budget, run) whose spend is closest to ``target``."""
    return min(points, key=lambda p: abs(p[1].cost - target))
