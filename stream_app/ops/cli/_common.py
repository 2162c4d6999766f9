"""Helpers shared by the CLI commands."""

from __future__ import annotations

import argparse

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


def store_from(args: argparse.Namespace) -> RedisPolicyStore:
    s = settings_from(args)
    return RedisPolicyStore.from_url(s.redis_url, prefix=s.key_prefix, **s.redis_kwargs())
