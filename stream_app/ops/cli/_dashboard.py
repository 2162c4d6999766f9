"""``rl-commons dashboard``: serve the web dashboard (aiohttp) for the policies in Redis."""

from __future__ import annotations

import argparse
import sys

from ._common import redis_command, settings_from, store_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the live web dashboard (charts, loop health, rollout and kill switch)",
        description=(
            "Serve a web page per policy that refreshes every 1.5 s: reward over time by cohort, "
            "arm shares, quality / cost / latency, loop health, config, and controls for the "
            "rollout fraction and the kill switch. Changes need the token from "
            "RL_COMMONS_DASHBOARD_TOKEN (sent as 'Authorization: Bearer <token>'); without it "
            "the page is read-only."
        ),
        epilog="example: RL_COMMONS_DASHBOARD_TOKEN=s3cret rl-commons dashboard --port 8090",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port (default 8090; 0 = a free one)")
    p.add_argument(
        "--kafka-bootstrap", help="Kafka, to count the DLQ topic ($RL_COMMONS_KAFKA_BOOTSTRAP)"
    )
    p.add_argument("--topic-prefix", help="topic prefix ($RL_COMMONS_TOPIC_PREFIX or rlc.)")
    redis_command(p, run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from ..dashboard import dashboard_app

    settings = settings_from(args)
    store = store_from(args)
    store.list_policies()  # fail now, with the URL, if Redis is unreachable
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    if token is None:
        print(
            "note: RL_COMMONS_DASHBOARD_TOKEN is not set: the dashboard is read-only",
            file=sys.stderr,
        )

    if args.port == 0:
        from stream_app.dev import free_port

        args.port = free_port()

    def announce(_msg: str) -> None:
        print(f"dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)

    app = dashboard_app(store, token, settings=settings)
    web.run_app(app, host=args.host, port=args.port, print=announce)
    return 0
