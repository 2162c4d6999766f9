"""The ``rl-commons`` command line. Each subcommand lives in its own module with a
``register(subparsers)`` function; nothing runs at import time."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# module name (under stream_app.ops.cli) -> registers one or more subcommands
COMMAND_MODULES = [
    "_dev",
    "_demo",
    "_worker",
    "_schema",
    "_policy",
    "_objective",
    "_ops",
    "_dashboard",
    "_report",
    "_dlq",
    "_feedback",
    "_rebuild",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl-commons",
        description=(
            "Learn which LLM provider to route each request to. A contextual bandit picks the "
            "provider, decisions and outcomes flow through Kafka, a Faust stream turns them into "
            "rewards and updates the policy in Redis. Settings come from RL_COMMONS_* env vars."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Errors a person can act on (every ``RLCommonsError``, bad
    ``RL_COMMONS_*`` settings included) print one ``error: …`` line and exit 1; a closed
    output pipe (``rl-commons schema | head``) ends quietly with 141, like other tools."""
    from policy_store import unknown_variables

    for line in unknown_variables(os.environ, once=True):
        print(f"warning: {line}", file=sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away: silence the flush at exit, report like SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # errors a person can act on, not tracebacks
        from policy_store import RLCommonsError

        if isinstance(exc, RLCommonsError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
