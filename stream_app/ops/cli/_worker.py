"""``rl-commons worker``: run one stream worker (join + updater) in this process."""

from __future__ import annotations

import argparse

from ._common import add_redis_options, settings_from


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import faust

    from stream_app import create_app

    settings = settings_from(args)
    sa = create_app(
        settings,
        app_id=args.app_id,
        datadir=args.datadir,
        web_port=args.web_port,
        web_enabled=not args.without_web,
        batch_size=args.batch_size,
        batch_within=args.batch_within,
        sweep_interval=args.sweep_interval,
        default_window=args.default_window,
        tombstone_seconds=args.tombstone_seconds,
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
