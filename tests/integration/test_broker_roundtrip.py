"""A message round-trips through the broker that the embedded launcher started."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def test_confluent_kafka_roundtrip(services, topics, unique):
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": services.bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topics.decisions, key=b"k1", value=b"hello " + unique.encode())
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": services.bootstrap,
            "group.id": f"g{unique}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topics.decisions])
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got = msg
    consumer.close()
    assert got is not None, "message did not come back from the broker"
    assert got.value() == b"hello " + unique.encode()
    assert got.key() == b"k1"


def test_dev_command_prints_exports_and_stops(tmp_path):
    """`rl-commons dev` starts both services, prints exports, stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    import redis

    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_app.ops.cli", "dev"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RL_COMMONS_TOPIC_PREFIX": "devtest."},
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert set(env) >= {"RL_COMMONS_KAFKA_BOOTSTRAP", "RL_COMMONS_REDIS_URL"}
        assert redis.Redis.from_url(env["RL_COMMONS_REDIS_URL"]).ping()
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": env["RL_COMMONS_KAFKA_BOOTSTRAP"]}).list_topics(
            timeout=10
        )
        assert {"devtest.decisions", "devtest.outcomes", "devtest.rewards", "devtest.dlq"} <= set(
            md.topics
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
