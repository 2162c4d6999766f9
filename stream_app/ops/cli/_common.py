"""Helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from policy_store import RedisPolicyStore, Settings


def settings_from(args: argparse.Namespace | None = None) -> Settings:
    overrides = {}
    for field in ("redis_url", "kafka_bootstrap", "key_prefix", "topic_prefix"):
        value = getattr(args, field, None) if args is not None else None
        if value:
            overrides[field] = value
    return Settings(**overrides)


def add_redis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--redis-url", help="Redis URL (default: $RL_COMMONS_REDIS_URL or redis://127.0.0.1:6379/0)"
    )
    p.add_argument("--key-prefix", help="Redis key prefix (default: $RL_COMMONS_KEY_PREFIX or rlc)")


def redis_command(p: argparse.ArgumentParser, func: Callable[..., int], **defaults: Any) -> None:
    """Finish a subcommand that talks to Redis: its Redis options (listed last in its help)
    and the function that runs it."""
    add_redis_options(p)
    p.set_defaults(func=func, **defaults)


def add_yes_option(p: argparse.ArgumentParser) -> None:
    """``--yes``/``-y``: skip the question ``confirm`` asks."""
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def store_from(args: argparse.Namespace) -> RedisPolicyStore:
    return RedisPolicyStore.from_settings(settings_from(args))


def confirm(question: str, yes: bool, flag: str = "--yes") -> bool:
    """True when ``yes`` or a person typed y; refuses (False + message) without a terminal."""
    if yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        print(
            f"error: refusing without confirmation: stdin is not a terminal; pass {flag} "
            "to confirm",
            file=sys.stderr,
        )
        return False
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        print("cancelled; nothing changed", file=sys.stderr)
        return False
    return True


def percent(fraction: float) -> str:
    """A fraction as a percentage with the digits it needs: 0.25 -> '25%', 0.005 -> '0.5%'."""
    return f"{fraction * 100:.4g}%"


def when(ts: float | None) -> str:
    """A unix time as UTC text, or 'never'."""
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def bounded(
    convert: Callable[[str], float],
    ok: Callable[[float], bool],
    outside: str,
    example: str,
    kind: str = "a number",
) -> Callable[[str], float]:
    """An argparse type: ``convert(raw)``, refused with ``outside`` (``{raw}`` filled in)
    when ``ok`` says no, and as not ``kind`` when ``convert`` cannot read it."""

    def parse(raw: str) -> float:
        try:
            v = convert(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not {kind}; e.g. {example}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(outside.format(raw=raw))
        return v

    return parse
