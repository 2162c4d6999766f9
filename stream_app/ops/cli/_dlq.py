"""``rl-commons dlq``: the latest dead letters with their reason and decoded payload."""

from __future__ import annotations

import argparse
import json
import typing

from ._common import settings_from, when
from ._report import add_kafka_options

PAYLOAD_CHARS = 400


def register(sub: argparse._SubParsersAction) -> None:
    from producers import DLQRecord

    reasons = typing.get_args(DLQRecord.model_fields["reason"].annotation)
    p = sub.add_parser(
        "dlq",
        help="show the dead-letter topic: counts per reason and the latest records",
        description=(
            "Read the dead-letter topic (the messages the stream workers could not use) and show "
            "how many records it holds per reason and per policy, then the latest ones with their "
            "reason, detail, where they came from and their original payload, decoded. A record "
            "is attributed to the policy its payload names; bad JSON names none."
        ),
    )
    p.add_argument("--tail", type=int, default=10, metavar="N", help="latest records shown (10)")
    p.add_argument("--reason", choices=reasons, metavar="REASON", help=f"only {', '.join(reasons)}")
    p.add_argument("--policy", help="only records whose payload names this policy")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_kafka_options(p, timeout=30.0)
    p.set_defaults(func=run)


def render(dead, *, policy: str | None, reason: str | None) -> str:
    """The text form of ``DeadLetters``."""
    d = dead.to_dict()
    if not d["total"]:
        return f"DLQ {d['topic']}: empty"
    reasons = ", ".join(f"{k}={v}" for k, v in d["by_reason"].items())
    policies = ", ".join(f"{k or '(none)'} {v}" for k, v in d["by_policy"].items())
    lines = [f"DLQ {d['topic']}: {d['total']} records ({reasons}); by policy: {policies}"]
    if d["unreadable"]:
        lines.append(f"  {d['unreadable']} messages on the topic are not DLQ records")
    which = " ".join(x for x in (policy and f"policy {policy}", reason and f"reason {reason}") if x)
    if not dead.latest:
        lines.append(f"no records{' of ' + which if which else ''}")
        return "\n".join(lines)
    lines.append(f"latest {len(dead.latest)}{' of ' + which if which else ''} (newest last):")
    for x in dead.latest:
        where = f"{x.source_topic}[{x.partition}]@{x.offset} key {x.key or '-'}"
        lines.append(f"{when(x.timestamp)}  {x.reason}  policy {x.policy or '-'}  {where}")
        lines.append(f"  detail:  {x.detail}")
        payload = x.payload if isinstance(x.payload, str) else json.dumps(x.payload)
        if len(payload) > PAYLOAD_CHARS:
            payload = payload[:PAYLOAD_CHARS] + f"… ({len(payload)} chars)"
        lines.append(f"  payload: {payload}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from policy_store import ConfigError

    from .._dlq import read_dead_letters

    if args.tail < 0:
        raise ConfigError(f"--tail {args.tail}: give a number of records ≥ 0, e.g. --tail 10")
    dead = read_dead_letters(
        settings_from(args),
        policy=args.policy,
        reason=args.reason,
        tail=args.tail,
        timeout=args.timeout,
    )
    if args.json:
        print(json.dumps(dead.to_dict(), indent=2, allow_nan=False))
    else:
        print(render(dead, policy=args.policy, reason=args.reason))
    return 0
