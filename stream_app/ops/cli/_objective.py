"""``rl-commons objective``: show or change what a live policy optimises; and the objective
options ``policy create`` shares with it (``add_objective_options``, ``objective_fields``).

The config's own validation (``policy_store.Objective`` and ``PolicyConfig``) decides what
is refused; here the options become its fields and its errors one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from policy_store import ConfigError, PolicyConfig, PolicyStore

from .._constraint import describe_objective
from ._common import redis_command, store_from

KINDS = {"weighted": "weighted", "quality-floor": "quality_floor", "budget": "budget"}
COST_UNITS = (
    "in the outcome's cost units: dollars when the policy has a cost cap (reward.cost_cap, "
    "--cost-cap), else the 0..1 cost the outcomes carry"
)


def one_line(exc: Exception) -> str:
    """A config error on one line: 'invalid policy config: a: why; b: why'."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) < 2:
        return " ".join(lines)
    return f"{lines[0]} {'; '.join(lines[1:])}"


def _values(p: argparse._ActionsContainer, budget_flags: tuple[str, ...]) -> None:
    p.add_argument(
        "--quality-margin",
        type=float,
        metavar="M",
        help="quality floor relative to the baseline arm: mean quality ≥ its quality − M "
        "(0.01 = one point; needs a baseline arm)",
    )
    p.add_argument(
        "--quality-floor",
        type=float,
        metavar="F",
        help="absolute quality floor: mean quality ≥ F (0..1)",
    )
    p.add_argument(
        *budget_flags,
        dest="max_cost",
        type=float,
        metavar="X",
        help=f"budget: mean cost per request ≤ X, {COST_UNITS}",
    )


def _latency(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--latency-weight",
        type=float,
        metavar="W",
        help="quality floor / budget: weight of the (normalised) latency beside the goal (0)",
    )


def add_objective_options(p: argparse.ArgumentParser) -> None:
    """``policy create``'s objective options (the kind is inferred from the value given)."""
    g = p.add_argument_group(
        "objective",
        "What the policy optimises (default: the weighted reward). quality-floor: cheapest "
        "routing with mean quality above a floor; budget: best quality with mean cost per "
        "request under a budget.",
    )
    g.add_argument(
        "--objective",
        choices=list(KINDS),
        help="weighted (default), quality-floor (with --quality-margin or --quality-floor) or "
        "budget (with --max-cost)",
    )
    _values(g, ("--max-cost", "--budget"))
    _latency(g)


def objective_fields(
    kind: str | None,
    margin: float | None,
    floor: float | None,
    max_cost: float | None,
    latency_weight: float | None,
) -> dict[str, Any] | None:
    """The ``objective`` fields for these options (None: none given); a missing or extra
    value is a ``ConfigError`` naming the option to add or remove."""
    given = {
        "--quality-margin": margin,
        "--quality-floor": floor,
        "--max-cost": max_cost,
        "--latency-weight": latency_weight,
    }
    if kind is None:
        if max_cost is not None:
            kind = "budget"
        elif margin is not None or floor is not None:
            kind = "quality-floor"
        elif latency_weight is not None:
            raise ConfigError(
                "--latency-weight belongs to a constrained objective: add --objective "
                "quality-floor or budget (a weighted policy's latency weight is in its reward)"
            )
        else:
            return None
    if kind == "quality-floor" and margin is None and floor is None:
        raise ConfigError(
            "--objective quality-floor needs --quality-margin M (against the baseline arm, "
            "e.g. 0.01) or --quality-floor F (absolute, e.g. 0.85)"
        )
    if margin is not None and floor is not None:
        raise ConfigError("give one of --quality-margin or --quality-floor, not both")
    if kind == "budget" and max_cost is None:
        raise ConfigError(f"--objective budget needs --max-cost X ({COST_UNITS})")
    allowed = {
        "weighted": (),
        "quality-floor": ("--quality-margin", "--quality-floor", "--latency-weight"),
        "budget": ("--max-cost", "--latency-weight"),
    }[kind]
    extra = [flag for flag, v in given.items() if v is not None and flag not in allowed]
    if extra:
        raise ConfigError(f"{', '.join(extra)} does not apply to the {kind} objective; remove it")
    fields: dict[str, Any] = {"kind": KINDS[kind]}
    for name, value in (
        ("quality_margin", margin),
        ("quality_floor", floor),
        ("max_cost", max_cost),
        ("latency_weight", latency_weight),
    ):
        if value is not None:
            fields[name] = value
    return fields


def register(sub: argparse._SubParsersAction) -> None:
    o = sub.add_parser(
        "objective",
        help="show or change what a live policy optimises (weighted, quality floor, budget)",
        description=(
            "Show the policy's objective, or change it: --weighted (the reward's weights), "
            "--quality-margin M / --quality-floor F (cheapest routing with mean quality above "
            "the floor), --budget X (best quality with mean cost per request ≤ X). Nothing is "
            "relearnt: proxies select with the new objective from their next refresh. The "
            "multiplier λ is reset to 0 when the kind changes (a floor's λ prices quality in "
            "cost, a budget's cost in quality: one means nothing to the other) and kept "
            "otherwise (a new margin or budget: it adapts from the next rewards); "
            "--reset-multiplier resets it in any case, also alone."
        ),
        epilog="examples: rl-commons objective provider_selection --quality-margin 0.01 | "
        "... --budget 0.004 | ... --weighted",
    )
    o.add_argument("policy", help="policy name")
    g = o.add_mutually_exclusive_group()
    g.add_argument("--weighted", action="store_true", help="maximise the weighted reward again")
    _values(g, ("--budget", "--max-cost"))
    _latency(o)
    o.add_argument(
        "--reset-multiplier",
        action="store_true",
        help="set the multiplier λ to 0 (with or without a change of objective)",
    )
    redis_command(o, objective)


def reset_multiplier(store: PolicyStore, policy: str) -> float:
    """Set ``policy``'s multiplier λ to 0 (atomically, a new version; nothing when it is 0
    already); the λ it had."""
    dual = store.read_state(policy).dual
    if dual > 0:
        store.apply(policy, [], dual_delta=-sys.float_info.max)
    return dual


def _changed(config: PolicyConfig, args: argparse.Namespace) -> PolicyConfig | None:
    """The config with the objective the options ask for (None: no option given). Only
    --latency-weight keeps the current constraint; the objective's ``confidence`` is kept,
    and its ``dual_step`` while the kind stays."""
    old = config.objective
    kind = "weighted" if args.weighted else None
    values = (args.quality_margin, args.quality_floor, args.max_cost)
    if kind is None and all(v is None for v in values) and old.constrained:
        values = (old.quality_margin, old.quality_floor, old.max_cost)
        if args.latency_weight is None:
            return None
    fields = objective_fields(kind, *values, args.latency_weight)
    if fields is None:
        return None
    if fields["kind"] != "weighted":
        fields["confidence"] = old.confidence
        if fields["kind"] == old.kind and old.dual_step is not None:
            fields["dual_step"] = old.dual_step
    try:
        return config.with_changes(objective=fields)
    except ConfigError as exc:
        raise ConfigError(one_line(exc)) from None


def objective(args: argparse.Namespace) -> int:
    store = store_from(args)
    old = store.get_config(args.policy)
    new = _changed(old, args)
    reset = args.reset_multiplier
    if new is None:
        print(f"policy {args.policy!r}: {describe_objective(old)}")
    elif new.objective == old.objective:
        print(f"policy {args.policy!r}: objective unchanged ({describe_objective(old)})")
    else:
        store.put_config(new)
        print(f"policy {args.policy!r}: {describe_objective(old)} → {describe_objective(new)}")
        reset = reset or new.objective.kind != old.objective.kind
    if reset:
        dual = reset_multiplier(store, args.policy)
        if dual > 0 or args.reset_multiplier:
            print(f"multiplier λ reset to 0 (was {dual:.4g})")
    return 0
