"""``rl-commons feedback``: serve ``POST /v1/feedback`` (late quality scores) to Kafka."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "feedback",
        help="serve POST /v1/feedback: late quality scores for decisions, published to Kafka",
        description=(
            'Accept {"decision_id": "...", "quality": 0.8, "final": true} (and optionally cost, '
            "latency, error) and publish it as an outcome part keyed by the decision id; the "
            "stream worker closes the reward. Requests need 'Authorization: Bearer <token>' "
            "with the value of RL_COMMONS_FEEDBACK_TOKEN. Answers 202, 400 with the reason, "
            "401/403, or 503 when Kafka is unreachable and the queue is full."
        ),
        epilog="example: RL_COMMONS_FEEDBACK_TOKEN=s3cret rl-commons feedback --port 8091",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8091, help="port (default 8091; 0 = a free one)")
    p.add_argument(
        "--queue-max",
        type=int,
        default=10_000,
        help="feedback events buffered while Kafka is unreachable before answering 503",
    )
    p.add_argument(
        "--kafka-bootstrap", help="Kafka bootstrap servers ($RL_COMMONS_KAFKA_BOOTSTRAP)"
    )
    p.add_argument("--topic-prefix", help="topic prefix ($RL_COMMONS_TOPIC_PREFIX or rlc.)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from producers import EventProducer, Topics

    from ..feedback import TOKEN_ENV, feedback_app

    settings = settings_from(args)
    token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        print(f"note: {TOKEN_ENV} is not set: every POST gets 403", file=sys.stderr)
    producer = EventProducer(settings, config={"queue.buffering.max.messages": args.queue_max})
    producer.start()  # a configuration librdkafka refuses fails now, naming the setting
    if args.port == 0:
        from stream_app.dev import free_port

        args.port = free_port()

    def announce(_msg: str) -> None:
        print(f"feedback API on http://{args.host}:{args.port}/v1/feedback", flush=True)

    app = feedback_app(producer, Topics.from_settings(settings), token)
    web.run_app(app, host=args.host, port=args.port, print=announce)
    return 0
