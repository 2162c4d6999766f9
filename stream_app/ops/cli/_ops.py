"""``rl-commons inspect | rollout | disable | enable | reset``: look at and steer a live policy."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace

from policy_store import ConfigError
from stream_app.aggregates import AGG_TTL_SECONDS

from ._common import (
    add_yes_option,
    confirm,
    format_table,
    percent,
    redis_command,
    settings_from,
    store_from,
    when,
)
from ._report import add_kafka_options

MAX_WINDOW_MINUTES = AGG_TTL_SECONDS // 60


def register(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "inspect",
        help="show a policy's version, freshness, per-arm statistics and loop health",
        description=(
            "Show a policy: version, when its parameters last changed (staleness), config, its "
            "objective and (quality floor, budget) the constraint: target, buffer, measured mean "
            "with a 95% interval, the multiplier λ and a verdict (held / violated / not enough "
            "data); per arm the learned count n, θ, and — from the per-minute aggregates of the "
            "last --window minutes — mean reward, share of rewarded traffic, quality, cost, "
            "latency; then per cohort figures and the stream's health counters."
        ),
    )
    i.add_argument("policy", help="policy name")
    i.add_argument("--json", action="store_true", help="print the full report as JSON")
    i.add_argument(
        "--window", type=int, default=60, metavar="MIN", help="aggregate window in minutes (60)"
    )
    i.add_argument(
        "--no-kafka",
        action="store_true",
        help="do not read the DLQ topic (DLQ counts from the workers' Redis counters only)",
    )
    add_kafka_options(i, timeout=5.0)
    redis_command(i, inspect)

    r = sub.add_parser(
        "rollout",
        help="set the share of traffic served by the learned policy",
        description=(
            "Set the policy's rollout fraction: the share of requests the learned policy serves; "
            "the rest go to the baseline cohort. Proxies pick it up on their next refresh."
        ),
        epilog="examples: rl-commons rollout provider_selection 0.25 | ... 25%",
    )
    r.add_argument("policy", help="policy name")
    r.add_argument("fraction", help="a number in [0, 1] or a percentage such as 25%%")
    # '-10%' is a value to refuse with a message, not an unknown option
    r._negative_number_matcher = re.compile(r"^-\d*\.?\d+%?$")
    redis_command(r, rollout)

    for name, enabled in (("disable", False), ("enable", True)):
        p = sub.add_parser(
            name,
            help=(
                "kill switch: serve the baseline arm only"
                if not enabled
                else "turn the learned policy back on"
            ),
            description=(
                "Kill switch. `disable` makes every proxy serve the baseline arm (config.enabled "
                "= false) on its next refresh; learning from outcomes already in flight goes on. "
                "`enable` restores the learned policy at the configured rollout."
            ),
        )
        p.add_argument("policy", help="policy name")
        redis_command(p, set_enabled, enabled=enabled)

    z = sub.add_parser(
        "reset",
        help="forget a policy's learned state (config kept)",
        description=(
            "Forget everything the policy learned: the per-arm statistics are deleted and the "
            "version bumped, so proxies start from the prior. The config (arms, rollout, kill "
            "switch) is kept. Asks for confirmation on a terminal; pass --yes in scripts."
        ),
    )
    z.add_argument("policy", help="policy name")
    add_yes_option(z)
    redis_command(z, reset)


def parse_fraction(raw: str) -> float:
    """``"0.25"`` or ``"25%"`` -> 0.25; anything outside [0, 1] is an error naming the range."""
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(
            f"rollout fraction {raw!r} is not a number; give a value between 0 and 1 "
            "(e.g. 0.25) or a percentage (25%)"
        ) from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise ConfigError(
            f"rollout fraction {raw!r} is out of range; give a value between 0 and 1 "
            "(e.g. 0.25) or a percentage between 0% and 100%"
        )
    return value


def rollout(args: argparse.Namespace) -> int:
    fraction = parse_fraction(args.fraction)
    store = store_from(args)
    old = store.get_config(args.policy)
    new = store.update_config(args.policy, rollout_fraction=fraction)
    note = "" if new.enabled else " (the policy is disabled: run `rl-commons enable` to serve it)"
    print(
        f"policy {args.policy!r}: rollout {percent(old.rollout_fraction)} -> "
        f"{percent(new.rollout_fraction)}{note}"
    )
    return 0


def set_enabled(args: argparse.Namespace) -> int:
    store = store_from(args)
    cfg = store.update_config(args.policy, enabled=args.enabled)
    if args.enabled:
        print(
            f"policy {args.policy!r} enabled: learned policy serves {percent(cfg.rollout_fraction)}"
        )
    else:
        print(
            f"policy {args.policy!r} DISABLED: proxies serve the baseline arm "
            f"{cfg.fallback_arm!r}; undo with `rl-commons enable {args.policy}`"
        )
    return 0


def reset(args: argparse.Namespace) -> int:
    store = store_from(args)
    state = store.read_state(args.policy)  # unknown policy -> clear error before asking
    n = sum(st.n for st in state.arms.values())
    question = (
        f"Reset policy {args.policy!r}? This forgets {n:g} observations learned up to "
        f"version {state.version}."
    )
    if not confirm(question, args.yes):
        return 1
    version = store.reset(args.policy)  # recorded with its cut: the watermarks at the reset
    print(f"policy {args.policy!r} reset: learned state cleared, now at version {version}")
    return 0


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def _auto(v: float | None) -> str:
    """About three significant digits: 1544, 12.3, 0.651, 0.0301."""
    if v is None:
        return "-"
    a = abs(v)
    decimals = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3 if a >= 0.1 or a == 0 else 4
    return f"{v:.{decimals}f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never updated"
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def inspect(args: argparse.Namespace) -> int:
    from .. import read_policy_report

    if not 1 <= args.window <= MAX_WINDOW_MINUTES:
        raise ConfigError(
            f"--window {args.window}: give a number of minutes from 1 to {MAX_WINDOW_MINUTES} "
            "(aggregates are kept 7 days)"
        )
    store = store_from(args)
    report = read_policy_report(store, args.policy, window_minutes=args.window)
    if not args.no_kafka:
        report = replace(report, dead_letters=_dead_letters(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(render(report))
    return 0


def _dead_letters(args: argparse.Namespace) -> dict:
    """The DLQ topic's counts for ``args.policy``, or ``{"error": why}``."""
    from policy_store import RLCommonsError

    from .._dlq import read_dead_letters

    try:
        dead = read_dead_letters(settings_from(args), tail=0, timeout=args.timeout)
    except RLCommonsError as exc:
        return {"error": str(exc)}
    return dead.for_policy(args.policy)


def _dlq_line(h, dead: dict) -> str:
    """The DLQ part of the loop-health line: the topic's counts when it was read, else the
    workers' Redis counters (which miss records that name no policy they could check)."""
    if dead and "error" not in dead:
        reasons = ", ".join(f"{k}={v}" for k, v in dead["by_reason"].items())
        text = f"DLQ {dead['total']}" + (f" ({reasons})" if reasons else "")
        if dead["unattributed"]:
            text += f" + {dead['unattributed']} naming no policy"
        if dead["total"] or dead["unattributed"]:
            text += " (`rl-commons dlq` lists them)"
        return text
    reasons = ", ".join(f"{k}={v}" for k, v in h.dlq_by_reason.items())
    text = f"DLQ {h.dlq_total}" + (f" ({reasons})" if reasons else "")
    return text + (" (worker counters; DLQ topic not read)" if dead else "")


def render(report) -> str:
    """The human-readable form of a ``PolicyReport``."""
    cfg = report.config
    alg = cfg["algorithm"]
    lines = [
        f"policy     {report.name}",
        f"state      {'enabled' if cfg['enabled'] else 'DISABLED (kill switch on)'}, "
        f"rollout {percent(cfg['rollout_fraction'])}, baseline arm "
        f"{cfg['baseline_arm'] or cfg['arms'][0]}",
        f"version    {report.version}",
        f"updated    {when(report.updated_at)} ({_age(report.staleness_seconds)})",
        f"algorithm  {alg['name']} alpha={alg['alpha']} epsilon={alg['epsilon']} "
        f"ridge={alg['ridge']} forgetting={alg['forgetting']}",
        f"features   {cfg['n_features']}",
        f"objective  {report.objective}",
    ]
    if report.held is not None:
        lines.append(f"HELD       {report.held}")
    if report.constraint is not None:
        lines += ["", "constraint (every observation that updated the policy; learned cohort "
                  "alone: `rl-commons report`)"]  # fmt: skip
        lines += ["  " + line for line in report.constraint.lines()]
    lines += [
        "",
        f"arms (n: learned count; other columns: last {report.window_minutes} min of rewards)",
    ]
    rows = []
    for a in report.arms:
        theta = ", ".join(f"{v:+.3f}" for v in a.theta[:6])
        if len(a.theta) > 6:
            theta += ", …"
        rows.append(
            (
                a.arm,
                f"{a.n:g}",
                _num(a.mean_reward),
                "-" if a.share is None else f"{a.share:.1%}",
                _auto(a.quality),
                _auto(a.cost),
                _auto(a.latency),
                f"[{theta}]",
            )
        )
    header = ("ARM", "N", "REWARD", "SHARE", "QUALITY", "COST", "LATENCY", "THETA")
    lines += ["  " + line for line in format_table(header, rows).splitlines()]
    if report.cohorts:
        lines += ["", "cohorts"]
        crow = [
            (
                c.cohort,
                f"{c.n:g}",
                _num(c.mean_reward),
                _auto(c.quality),
                _auto(c.cost),
                _auto(c.latency),
            )
            for c in report.cohorts
        ]
        ch = ("COHORT", "N", "REWARD", "QUALITY", "COST", "LATENCY")
        lines += ["  " + line for line in format_table(ch, crow).splitlines()]
    h = report.health
    lines += ["", "loop health"]
    lines.append(
        f"  join rate {'-' if h.join_rate is None else f'{h.join_rate:.1%}'}, "
        + _dlq_line(h, report.dead_letters)
        + f", last apply {_age(h.last_apply_age_seconds)}"
        + f", consumer lag {_num(h.consumer_lag_ms, '.0f')} ms"
    )
    if "error" in report.dead_letters:
        lines.append(f"  DLQ topic not read: {report.dead_letters['error']}")
    other = {k: v for k, v in h.counters.items() if not k.startswith("dlq:")}
    if other:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in other.items()))
    else:
        lines.append("  no health counters yet (no stream worker has processed events)")
    return "\n".join(lines)
