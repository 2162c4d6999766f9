"""``rl-commons policy create|list|show|delete``: manage policy configs in Redis."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from policy_store import ConfigError, UnknownPolicyError, make_config
from stream_app import held_policies

from .._constraint import describe_objective
from ._common import (
    add_yes_option,
    confirm,
    format_table,
    percent,
    redis_command,
    store_from,
    when,
)
from ._objective import add_objective_options, objective_fields, one_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "policy",
        help="create, list, show or delete policies",
        description="Manage policies (config + learned state) stored in Redis.",
    )
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])

    c = psub.add_parser(
        "create",
        help="register a new policy",
        description=(
            "Register a new policy. Options override the fields of --config, so a JSON file can "
            "hold the reward spec and hyperparameters while the command line names the arms."
        ),
        epilog="examples: rl-commons policy create provider_selection "
        "--arms gpt-4,claude-3,llama --features 7 --rollout 0.1 --baseline-arm gpt-4 "
        "--cost-cap 0.01 --latency-cap-ms 10000 | ... --objective quality-floor "
        "--quality-margin 0.01 | ... --cost-cap 0.05 --objective budget --max-cost 0.004",
    )
    c.add_argument("name", help="policy name (letters, digits, '_', '.', '-')")
    c.add_argument("--arms", help="comma-separated arm (provider) names, e.g. gpt-4,claude-3")
    c.add_argument("--features", type=int, help="length of the feature vector (n_features)")
    c.add_argument("--algorithm", choices=["linucb", "ts"], help="bandit algorithm (linucb)")
    c.add_argument(
        "--rollout", type=float, help="share of traffic served by the learned policy (0.1)"
    )
    c.add_argument("--baseline-arm", help="arm served outside the rollout and when disabled")
    c.add_argument(
        "--cost-cap",
        type=float,
        metavar="DOLLARS",
        help="dollars per request that count as the worst cost (1.0); with it, proxies "
        "report cost_usd= in dollars and --max-cost is in dollars (without it, cost is a "
        "fraction in [0, 1])",
    )
    c.add_argument(
        "--latency-cap-ms",
        type=float,
        metavar="MS",
        help="milliseconds that count as the worst latency (1.0); with it, proxies report "
        "latency_ms= in milliseconds (without it, latency is a fraction in [0, 1])",
    )
    c.add_argument(
        "--config",
        type=Path,
        metavar="FILE.json",
        help="JSON with any PolicyConfig fields (reward, algorithm, max_staleness_seconds, …)",
    )
    c.add_argument("--disabled", action="store_true", help="create with the kill switch on")
    add_objective_options(c)
    redis_command(c, create)

    ls = psub.add_parser("list", help="list policies", description="List the policies in Redis.")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    redis_command(ls, list_)

    s = psub.add_parser(
        "show",
        help="print a policy's config",
        description="Print a policy's config, version and last update.",
    )
    s.add_argument("name", help="policy name")
    s.add_argument("--json", action="store_true", help="print JSON (config, version, updated_at)")
    redis_command(s, show)

    d = psub.add_parser(
        "delete",
        help="delete a policy and its learned state",
        description=(
            "Delete a policy: its config, learned state, version, aggregates and health counters; "
            "the deletion is recorded (a rebuild no longer restores it). A policy the stream "
            "workers hold because Redis lost it can be deleted too: its deletion is recorded and "
            "the workers dead-letter its rewards. Asks for confirmation on a terminal; pass "
            "--yes in scripts."
        ),
    )
    d.add_argument("name", help="policy name")
    add_yes_option(d)
    redis_command(d, delete)


def parse_arms(raw: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty names are an error that says what to write."""
    arms = [a.strip() for a in raw.split(",")]
    if not raw.strip() or any(not a for a in arms):
        raise ConfigError(
            f"bad --arms {raw!r}: give comma-separated names without empty entries, "
            "e.g. --arms gpt-4,claude-3,llama"
        )
    return arms


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read --config {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--config {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a JSON object of PolicyConfig fields")
    return data


def create(args: argparse.Namespace) -> int:
    data: dict[str, Any] = _load_json(args.config) if args.config else {}
    data["name"] = args.name
    if args.arms is not None:
        data["arms"] = parse_arms(args.arms)
    if args.features is not None:
        data["n_features"] = args.features
    if args.algorithm is not None:
        data["algorithm"] = {**data.get("algorithm", {}), "name": args.algorithm}
    if args.rollout is not None:
        data["rollout_fraction"] = args.rollout
    if args.baseline_arm is not None:
        data["baseline_arm"] = args.baseline_arm
    if args.disabled:
        data["enabled"] = False
    caps = (
        ("cost_cap", args.cost_cap, "--cost-cap", "0.01 (dollars)"),
        ("latency_cap_ms", args.latency_cap_ms, "--latency-cap-ms", "10000 (ms)"),
    )
    for field, value, option, example in caps:
        if value is not None and not value > 0:
            raise ConfigError(f"bad {option} {value:g}: give a number > 0, e.g. {option} {example}")
        if value is not None:
            data["reward"] = {**data.get("reward", {}), field: value}
    objective = objective_fields(
        args.objective, args.quality_margin, args.quality_floor, args.max_cost, args.latency_weight
    )
    if objective is not None:
        data["objective"] = objective
    missing = [
        flag for flag, key in (("--arms", "arms"), ("--features", "n_features")) if key not in data
    ]
    if missing:
        raise ConfigError(
            f"policy create needs {' and '.join(missing)} (or those fields in --config), "
            "e.g. --arms gpt-4,claude-3,llama --features 8"
        )
    try:
        config = make_config(data)
    except ConfigError as exc:
        raise ConfigError(one_line(exc)) from None
    store = store_from(args)
    store.create(config)  # recorded by the store (rebuild restores it from Kafka)
    print(
        f"created policy {config.name!r}: arms {', '.join(config.arms)}; "
        f"{config.n_features} features; {config.algorithm.name}; "
        f"rollout {percent(config.rollout_fraction)}; "
        f"{'enabled' if config.enabled else 'DISABLED'}{_caps(config.reward)}; "
        f"{describe_objective(config)}"
    )
    return 0


def _caps(reward: Any) -> str:
    """``; cost cap $0.01, latency cap 10000 ms`` for the caps a reward spec has."""
    caps = []
    if reward.cost_cap is not None:
        caps.append(f"cost cap ${reward.cost_cap:g}")
    if reward.latency_cap_ms is not None:
        caps.append(f"latency cap {reward.latency_cap_ms:g} ms")
    return "; " + ", ".join(caps) if caps else ""


def list_(args: argparse.Namespace) -> int:
    store = store_from(args)
    rows = []
    for name in store.list_policies():
        head = store.head(name)
        cfg = head.config
        rows.append(
            {
                "name": name,
                "enabled": cfg.enabled,
                "rollout_fraction": cfg.rollout_fraction,
                "algorithm": cfg.algorithm.name,
                "arms": list(cfg.arms),
                "objective": cfg.objective.kind,
                "version": head.version,
                "updated_at": head.updated_at,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            f"no policies in Redis at {store.url} (prefix {store.prefix!r}); "
            "create one with `rl-commons policy create`"
        )
        return 0
    header = ("NAME", "STATE", "ROLLOUT", "ALGO", "VERSION", "OBJECTIVE", "ARMS")
    table = [
        (
            r["name"],
            "enabled" if r["enabled"] else "DISABLED",
            percent(r["rollout_fraction"]),
            r["algorithm"],
            str(r["version"]),
            r["objective"].replace("_", "-"),
            ",".join(r["arms"]),
        )
        for r in rows
    ]
    print(format_table(header, table))
    return 0


def show(args: argparse.Namespace) -> int:
    store = store_from(args)
    head = store.head(args.name)
    cfg = head.config.model_dump(mode="json")
    if args.json:
        print(
            json.dumps(
                {"config": cfg, "version": head.version, "updated_at": head.updated_at}, indent=2
            )
        )
        return 0
    print(f"policy {args.name}  version {head.version}  updated {when(head.updated_at)}")
    for key, value in cfg.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {json.dumps(v)}")
        else:
            print(f"{key}: {json.dumps(value)}")
    return 0


def delete(args: argparse.Namespace) -> int:
    store = store_from(args)
    try:
        head = store.head(args.name)  # unknown policy -> clear error before asking
    except UnknownPolicyError:
        held = held_policies(store).get(args.name)
        if held is None:  # neither in Redis nor held by a worker: a typo, most likely
            raise
        question = (
            f"Policy {args.name!r} is gone from Redis and stream workers hold its rewards. "
            "Record its deletion (its held rewards go to the DLQ as unknown_policy)?"
        )
        if not confirm(question, args.yes):
            return 1
        store.record_deletion(args.name)
        print(f"recorded the deletion of policy {args.name!r} (it was no longer in Redis)")
        return 0
    question = f"Delete policy {args.name!r} (version {head.version}) with all its learned state?"
    if not confirm(question, args.yes):
        return 1
    store.delete(args.name)  # recorded by the store
    print(f"deleted policy {args.name!r}")
    return 0
