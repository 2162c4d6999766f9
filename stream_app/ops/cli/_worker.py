"""``rl-commons worker``: run one stream worker (join + updater) in this process.

Before the Faust worker starts, Kafka and Redis are asked whether they answer: while one
does not, one line says which, where and what to do, and the check is retried (no
traceback); once both answer, one start line names the bootstrap, the partitions, Redis
and the policies.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

from ._common import add_redis_options, bounded, settings_from

RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Reach:
    """What the start-up check found: a one-line problem, or the facts for the start line."""

    problem: str | None = None
    partitions: int | None = None
    policies: tuple[str, ...] = ()


def start_line(settings, reach: Reach, app_id: str) -> str:
    """The worker's first line: where it reads, where it writes, what it serves (pure)."""
    from policy_store import mask_url
    from producers import Topics

    topics = Topics.from_settings(settings)
    parts = (
        f"{reach.partitions} partitions of"
        if reach.partitions is not None
        else "(not created yet) partitions of"
    )
    policies = (
        ", ".join(reach.policies) if reach.policies else "none yet (rl-commons policy create)"
    )
    return (
        f"rl-commons worker: consuming {parts} {topics.decisions} + {topics.outcomes} at "
        f"{settings.kafka_bootstrap} (group {app_id}-engine), applying rewards to Redis "
        f"{mask_url(settings.redis_url)} (prefix {settings.key_prefix}); policies: {policies}"
    )


def probe(settings, timeout: float = 5.0) -> Reach:
    """Ask Redis (the policy names) and Kafka (the decisions topic's partitions)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from policy_store import RedisPolicyStore, RLCommonsError
    from producers import Topics, kafka_config

    store = RedisPolicyStore.from_settings(settings)
    try:
        policies = tuple(store.list_policies())
    except RLCommonsError as exc:
        return Reach(f"RL_COMMONS_REDIS_URL: {exc}")
    finally:
        store.client.close()
    from ..report._source import quiet_kafka_logger

    decisions = Topics.from_settings(settings).decisions
    try:
        admin = AdminClient(kafka_config(settings, "admin"), logger=quiet_kafka_logger())
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        why = err.str() if hasattr(err, "str") else str(err)
        return Reach(
            f"RL_COMMONS_KAFKA_BOOTSTRAP: Kafka unreachable at {settings.kafka_bootstrap} "
            f"({why}) — start it (rl-commons dev) or set RL_COMMONS_KAFKA_BOOTSTRAP "
            "(--kafka-bootstrap)"
        )
    tmeta = meta.topics.get(decisions)
    found = tmeta is not None and tmeta.error is None and tmeta.partitions
    return Reach(None, len(tmeta.partitions) if found else None, policies)


def wait_for_services(settings, wait: float | None, retry: float = RETRY_SECONDS) -> Reach | None:
    """``probe`` until Kafka and Redis answer (one line per failed try on stderr); None when
    ``wait`` seconds passed first."""
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        reach = probe(settings)
        if reach.problem is None:
            return reach
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            print(f"error: {reach.problem}; gave up after --wait {wait:g} s", file=sys.stderr)
            return None
        pause = retry if left is None else min(retry, left)
        print(f"error: {reach.problem}; retrying in {pause:.0f} s", file=sys.stderr, flush=True)
        time.sleep(pause)


#: ``--checkpoint-every``: a whole number of changes ≥ 0 (0: no checkpoints).
checkpoint_every = bounded(
    int,
    lambda v: v >= 0,
    "{raw} is not a whole number ≥ 0 (changes between checkpoints; 0: none)",
    "10000",
    kind="a whole number ≥ 0",
)
#: ``--checkpoint-ratio``: a finite number > 0.
checkpoint_ratio = bounded(
    float, lambda v: math.isfinite(v) and v > 0, "{raw} is not a number > 0, e.g. 4", "4"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run a stream worker: join decisions and outcomes, update the policy in Redis",
        description=(
            "Start a worker that joins decisions and outcomes into rewards and applies them to "
            "the policies in Redis, in batches on one consumer thread hosted by a Faust worker "
            "(web server, timers, lifecycle). Workers started with the same --app-id share the "
            "partitions as one consumer group (<app id>-engine). Prometheus metrics are served "
            "at http://HOST:WEB_PORT/metrics. Stop it with Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument(
        "--kafka-bootstrap", help="Kafka bootstrap servers ($RL_COMMONS_KAFKA_BOOTSTRAP)"
    )
    p.add_argument("--topic-prefix", help="topic prefix ($RL_COMMONS_TOPIC_PREFIX or rlc.)")
    add_redis_options(p)
    p.add_argument(
        "--app-id",
        help="names the consumer group <app id>-engine and the changelog "
        "<app id>-join-changelog (default: <key prefix>-stream)",
    )
    p.add_argument(
        "-l",
        "--loglevel",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="Faust worker log level (default warning)",
    )
    p.add_argument("--logfile", help="write the worker log to this file instead of stderr")
    p.add_argument("--web-port", type=int, default=6066, help="port of /metrics (default 6066)")
    p.add_argument("--web-host", default="127.0.0.1", help="bind address of the web server")
    p.add_argument("--without-web", action="store_true", help="do not start the web server")
    p.add_argument("--datadir", help="Faust data directory (default: ./<app id>-data)")
    p.add_argument(
        "--wait",
        type=float,
        metavar="S",
        help="give up (exit 1) when Kafka or Redis still does not answer after S seconds "
        "(default: keep retrying every 5 s)",
    )
    p.add_argument(
        "--batch-size", type=int, default=1000, help="max messages per batch (default 1000)"
    )
    p.add_argument(
        "--batch-within",
        type=float,
        default=0.05,
        help="max seconds to wait for a batch's first message when idle (default 0.05)",
    )
    p.add_argument(
        "--sweep-interval",
        type=float,
        default=1.0,
        help="seconds between checks for closed reward windows (default 1)",
    )
    p.add_argument(
        "--default-window",
        type=float,
        default=600.0,
        help="window of an outcome that names no policy and arrives first (default 600 s)",
    )
    p.add_argument(
        "--tombstone-seconds",
        type=float,
        default=300.0,
        help="how long a closed decision is remembered to spot duplicates and late parts "
        "(default 300 s)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=checkpoint_every,
        default=10_000,
        metavar="N",
        help="re-write a join partition's live table into the changelog once N changes "
        "(and R × its live entries) were written since its last checkpoint, so a restore "
        "reads a bounded tail; 0: never (restores read the whole changelog) (default 10000)",
    )
    p.add_argument(
        "--checkpoint-ratio",
        type=checkpoint_ratio,
        default=4.0,
        metavar="R",
        help="… and once the changes reach R × the live entries: checkpoints add at most "
        "1/R writes per change, a restore reads at most (1 + R) × the live table + N "
        "records (default 4)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import faust

    from stream_app import create_app

    settings = settings_from(args)
    reach = wait_for_services(settings, args.wait)
    if reach is None:
        return 1
    app_id = args.app_id or f"{settings.key_prefix}-stream"
    print(start_line(settings, reach, app_id), file=sys.stderr, flush=True)
    sa = create_app(
        settings,
        app_id=app_id,
        datadir=args.datadir,
        web_port=args.web_port,
        web_enabled=not args.without_web,
        batch_size=args.batch_size,
        batch_within=args.batch_within,
        sweep_interval=args.sweep_interval,
        default_window=args.default_window,
        tombstone_seconds=args.tombstone_seconds,
        checkpoint_every=args.checkpoint_every,
        checkpoint_ratio=args.checkpoint_ratio,
        faust_options={"web_bind": args.web_host, "web_host": args.web_host},
    )
    worker = faust.Worker(
        sa.app, loglevel=args.loglevel, logfile=args.logfile, redirect_stdouts=False
    )
    # Faust's terminal spinner sets the root logger to DEBUG so that it can spin on
    # every record; that makes aiokafka build a debug record per message (~10% CPU).
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
