"""``rl-commons report`` and ``rl-commons evaluate``: measured improvement from the logs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import bounded, redis_command, settings_from, store_from

if TYPE_CHECKING:
    from policy_store import PolicyConfig


def add_kafka_options(p: argparse.ArgumentParser, timeout: float = 60.0) -> None:
    """``--kafka-bootstrap``, ``--topic-prefix`` and ``--timeout`` of a command reading a topic."""
    p.add_argument(
        "--kafka-bootstrap", help="bootstrap servers (default: $RL_COMMONS_KAFKA_BOOTSTRAP)"
    )
    p.add_argument(
        "--topic-prefix", help="topic prefix (default: $RL_COMMONS_TOPIC_PREFIX or rlc.)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"give up reading the topic after this many seconds ({timeout:g})",
    )


_margin = bounded(
    float,
    lambda v: 0.0 <= v < 1.0,
    "{raw} is outside [0, 1): the margin is on the 0..1 quality scale "
    "(0.01 = one percentage point)",
    "0.01",
)
_minutes = bounded(
    int,
    lambda v: 1 <= v <= 7 * 24 * 60,
    "{raw} is outside 1..10080: aggregates are kept for 7 days (10080 minutes)",
    "60",
)
_level = bounded(float, lambda v: 0.5 <= v < 1.0, "{raw} is outside [0.5, 1); e.g. 0.95", "0.95")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="learned vs baseline cohort: reward, quality, cost, latency, with intervals",
        description=(
            "Compare the learned cohort (rl) with the baseline cohort from the rewards topic "
            "(or the Redis aggregates): means, differences with intervals, cost reduction in %, "
            "and a non-inferiority verdict for quality: PASS when the lower bound of "
            "quality_rl - quality_baseline is above -MARGIN. A policy with a quality floor or a "
            "budget also gets its constraint checked on the learned cohort: held / violated / "
            "not enough data."
        ),
    )
    p.add_argument("policy", metavar="POLICY", help="policy name")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--plot", metavar="FILE.png", help="also write a PNG (needs matplotlib)")
    p.add_argument(
        "--margin",
        type=_margin,
        default=None,
        help="tolerated quality loss on the 0..1 scale (default: the policy's objective margin "
        "for a quality floor relative to the baseline arm, else 0.01 = 1 percentage point)",
    )
    p.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    p.add_argument(
        "--source",
        choices=("kafka", "redis"),
        default="kafka",
        help="kafka: every reward on the topic (default); redis: the workers' per-minute sums "
        "(faster, conservative intervals)",
    )
    p.add_argument(
        "--minutes",
        type=_minutes,
        default=7 * 24 * 60,
        help="--source redis: window in minutes (default and maximum 10080 = 7 days)",
    )
    add_kafka_options(p)
    redis_command(p, run_report)

    e = sub.add_parser(
        "evaluate",
        help="off-policy estimate (IPS, SNIPS, DR) of the current policy or a candidate config",
        description=(
            "Estimate from the logged rewards and their propensities what reward the policy's "
            "current parameters would earn if they served all traffic, and optionally what a "
            "candidate config (JSON or YAML with the fields to change, e.g. "
            '{"algorithm": {"epsilon": 0.05}}) would earn, before raising the rollout.'
        ),
    )
    e.add_argument("policy", metavar="POLICY", help="policy name")
    e.add_argument("--candidate-config", metavar="FILE", help="config fields to change (JSON/YAML)")
    e.add_argument(
        "--cohort",
        action="append",
        choices=("rl", "baseline", "shadow"),
        help="cohorts whose rounds are used (repeatable; default rl)",
    )
    e.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    e.add_argument("--folds", type=int, default=2, help="cross-fitting folds for DR (default 2)")
    e.add_argument("--seed", type=int, default=0, help="seed for folds and Thompson sampling")
    e.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_kafka_options(e)
    redis_command(e, run_evaluate)


def _print(result, as_json: bool) -> None:
    """A report or evaluation as strict JSON (no NaN) or as text."""
    print(json.dumps(result.to_dict(), indent=2, allow_nan=False) if as_json else result.to_text())


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def run_report(args: argparse.Namespace) -> int:
    from ..report import (
        PlotUnavailableError,
        build_report,
        build_report_from_aggregates,
        read_aggregates,
        read_rewards,
        with_constraint,
    )

    settings = settings_from(args)
    config = _read_config(args)
    margin = args.margin
    if margin is None:
        own = config.objective.quality_margin if config is not None else None
        margin = own if own is not None else 0.01
    if args.source == "kafka":
        rewards, stats = read_rewards(settings, args.policy, timeout=args.timeout)
        if not rewards:
            _check_policy_exists(args, stats.policies)
        report = build_report(
            rewards,
            margin=margin,
            level=args.level,
            policy=args.policy,
            source=f"topic {stats.topic}",
        )
        if stats.invalid:
            print(f"warning: {stats.invalid} unparseable messages skipped", file=sys.stderr)
    else:
        buckets = read_aggregates(settings, args.policy, minutes=args.minutes)
        if not any(b.cells for b in buckets):
            _check_policy_exists(args, {})
        report = build_report_from_aggregates(
            buckets, margin=margin, level=args.level, policy=args.policy
        )
    if config is not None:
        report = with_constraint(report, config)
    _print(report, args.json)
    if args.plot:
        try:
            report.plot(args.plot)
        except PlotUnavailableError as exc:
            return _fail(str(exc))
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _read_config(args: argparse.Namespace) -> PolicyConfig | None:
    """The policy's config for its objective; None when Redis is unreachable or the policy
    is unknown there (the report is then made without the constraint section)."""
    from policy_store import StoreUnavailableError, UnknownPolicyError

    try:
        return store_from(args).get_config(args.policy)
    except (StoreUnavailableError, UnknownPolicyError):
        return None


def _check_policy_exists(args: argparse.Namespace, on_topic: dict[str, int]) -> None:
    """No data for ``args.policy``: an unknown name is an error naming the policies that
    exist (an existing policy without rewards yet gets its empty report). Redis unreachable:
    the name cannot be checked, so the empty report is printed."""
    from policy_store import StoreUnavailableError, UnknownPolicyError

    try:
        store_from(args).get_config(args.policy)
    except StoreUnavailableError:
        return
    except UnknownPolicyError:
        known = sorted(set(store_from(args).list_policies()) | set(on_topic))
        raise UnknownPolicyError(
            f"no policy named {args.policy!r} in Redis and no rewards of it on the topic — "
            f"use one of {', '.join(known) if known else '(none yet)'} "
            "(`rl-commons policy list`)"
        ) from None


def _load_changes(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError("reading YAML needs pyyaml; pip install pyyaml or use JSON") from None
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of config fields, got {type(data).__name__}")
    return data


def run_evaluate(args: argparse.Namespace) -> int:
    from ..report import candidate_config, evaluate_policy, read_rewards

    settings = settings_from(args)
    store = store_from(args)
    config = store.get_config(args.policy)
    candidate = None
    if args.candidate_config:
        try:
            candidate = candidate_config(config, _load_changes(args.candidate_config))
        except (OSError, ValueError) as exc:
            return _fail(f"candidate config {args.candidate_config}: {exc}")
    state = store.read_state(args.policy)
    rewards, _ = read_rewards(settings, args.policy, timeout=args.timeout)
    try:
        result = evaluate_policy(
            rewards,
            config,
            state,
            candidate=candidate,
            cohorts=tuple(args.cohort or ("rl",)),
            level=args.level,
            folds=args.folds,
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(str(exc))
    _print(result, args.json)
    for label, res in (("current", result.current), ("candidate", result.candidate)):
        if res is not None and res.overlap_warning:
            print(f"warning: {label}: {res.overlap_warning}", file=sys.stderr)
    return 0
