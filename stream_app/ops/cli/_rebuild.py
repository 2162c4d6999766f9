"""``rl-commons rebuild [POLICY | --all]``: restore policies into an empty or wiped Redis
from Kafka (the policies topic and the rewards topic)."""

from __future__ import annotations

import argparse
import sys

from policy_store import ConfigError

from ._common import redis_command, settings_from, store_from
from ._report import add_kafka_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rebuild",
        help="restore policy configs and learned state from Kafka into an empty or wiped Redis",
        description=(
            "Restore a policy (or --all) from Kafka: its last config from the compacted "
            "policies topic, then its learned state by replaying the rewards topic through the "
            "worker's update rule. Without forgetting counts and sums are exact; the multiplier "
            "of a quality floor or budget is close, not equal (docs/operations.md, Rebuild). "
            "Workers holding the policy (a wiped Redis, or one restored from an older snapshot: "
            "use --replace) resume by themselves afterwards."
        ),
        epilog="examples: rl-commons rebuild provider_selection | rl-commons rebuild --all",
    )
    p.add_argument("policy", nargs="?", help="policy name")
    p.add_argument("--all", action="store_true", help="every policy the policies topic holds")
    p.add_argument(
        "--replace",
        action="store_true",
        help="drop what Redis still holds of the policy (e.g. state restored from an older "
        "snapshot) before restoring it",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    add_kafka_options(p, timeout=60.0)
    redis_command(p, run)


def run(args: argparse.Namespace) -> int:
    from stream_app import rebuild

    if bool(args.policy) == bool(args.all):
        raise ConfigError(
            "give one policy name or --all, e.g. rl-commons rebuild provider_selection"
        )
    settings = settings_from(args)
    store = store_from(args)
    tty = sys.stderr.isatty()

    def progress(read: int, total: int, applied: int) -> None:
        if args.quiet:
            return
        share = f" ({100 * read / total:.0f}%)" if total else ""
        line = f"rebuild: {read:,} of {total:,} rewards read{share}, {applied:,} applied"
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    results = rebuild(
        settings,
        store,
        None if args.all else [args.policy],
        replace=args.replace,
        progress=progress,
        timeout=args.timeout,
    )
    if tty and not args.quiet:
        print(file=sys.stderr)
    for r in results.values():
        extra = f", {r.rejected:,} refused" if r.rejected else ""
        print(
            f"rebuilt policy {r.name!r}: {r.applied:,} rewards applied, {r.skipped:,} before its "
            f"creation or last reset{extra}; now at version {r.version}"
        )
    if not results:
        print("nothing to rebuild: the policies topic holds no policy")
    return 0
