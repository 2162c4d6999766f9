"""Fault-suite fixtures: private broker and Redis processes that the tests may kill.

Each fault test gets its own Tansu broker and redis-server (never the session
services other tests share), so stopping them harms nobody else. Redis keeps an
append-only file in a temporary directory so a stop/start on the same port is an
outage, not a data loss.

Tansu is memory-only: after a restart the topics are gone (``start_broker``
re-creates them before traffic resumes) and so are the producer ids it handed
out, and an idempotent librdkafka producer then loops on UNKNOWN_PRODUCER_ID
(a real Kafka cluster keeps producer state in its log). Outages the producer
must ride out are therefore made with ``freeze_broker``/``thaw_broker``
(SIGSTOP/SIGCONT): the broker stops answering for the whole outage and keeps
its state.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from policy_store import RedisPolicyStore, Settings, make_config
from producers import Topics, create_topics
from stream_app.dev.embedded import EmbeddedBroker, EmbeddedRedis


@dataclass
class FaultServices:
    """A broker and a Redis that belong to one test; methods stop, freeze and restart them."""

    broker: EmbeddedBroker
    redis: EmbeddedRedis
    redis_dir: Path
    topics: Topics
    key_prefix: str
    partitions: int = 4
    log: list[tuple[float, str]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def store(self) -> RedisPolicyStore:
        return RedisPolicyStore.from_url(self.redis_url, prefix=self.key_prefix)

    def create_policy(self, name: str, arms: list[str], n_features: int, **kw) -> None:
        self.store().create(make_config(name=name, arms=arms, n_features=n_features, **kw))

    def create_topics(self) -> None:
        settings = Settings(kafka_bootstrap=self.bootstrap)
        create_topics(settings, self.topics, partitions=self.partitions)

    # -- faults ---------------------------------------------------------------------------------
    def _note(self, what: str) -> None:
        self.log.append((time.monotonic(), what))

    def stop_redis(self) -> None:
        self._note("redis stop")
        self.redis.stop()

    def start_redis(self) -> None:
        self.redis = _redis(self.redis_dir, port=self.redis.port).start()
        self._note("redis start")

    def wipe_redis(self) -> None:
        """Stop Redis and start it on the same port with nothing: a restart without
        persistence (its append-only files are removed first)."""
        self._note("redis wipe")
        self.redis.stop()
        for path in sorted(self.redis_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        self.redis = _redis(self.redis_dir, port=self.redis.port).start()

    def freeze_broker(self) -> None:
        """SIGSTOP the broker: it keeps its state but answers nothing until ``thaw_broker``."""
        self._note("broker freeze")
        os.kill(self.broker.proc.pid, signal.SIGSTOP)

    def thaw_broker(self) -> None:
        os.kill(self.broker.proc.pid, signal.SIGCONT)
        self._note("broker thaw")

    def stop_broker(self) -> None:
        self._note("broker kill")
        self.broker.kill()

    def start_broker(self) -> None:
        """Start a broker on the same port and re-create the topics (Tansu is memory-only)."""
        self.broker = EmbeddedBroker(port=self.broker.port).start()
        self.create_topics()
        self._note("broker start")


def _redis(directory: Path, port: int = 0) -> EmbeddedRedis:
    return EmbeddedRedis(
        port=port,
        extra_args=["--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory)],
    )


@pytest.fixture
def fault_services(tmp_path) -> Iterator[FaultServices]:
    unique = uuid.uuid4().hex[:8]
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    svc = FaultServices(
        broker=EmbeddedBroker(),
        redis=_redis(redis_dir),
        redis_dir=redis_dir,
        topics=Topics(prefix=f"f{unique}."),
        key_prefix=f"f{unique}",
    )
    try:
        svc.redis.start()
        svc.broker.start()
        svc.create_topics()
        yield svc
    finally:  # the test may have replaced either process: stop the current ones
        svc.broker.stop()
        svc.redis.stop()
