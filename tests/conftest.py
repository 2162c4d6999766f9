"""Shared fixtures: real embedded broker and Redis, once per test session.

Set RL_COMMONS_KAFKA_BOOTSTRAP and RL_COMMONS_REDIS_URL to use services already
running instead. Every test gets its own key prefix and topic prefix.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest


@dataclass
class Services:
    bootstrap: str
    redis_url: str
    embedded: object | None = None  # EmbeddedServices when started here


@pytest.fixture(scope="session")
def services():
    bootstrap = os.environ.get("RL_COMMONS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("RL_COMMONS_REDIS_URL")
    if bootstrap and redis_url:
        yield Services(bootstrap, redis_url)
        return
    from stream_app.dev.embedded import EmbeddedServices

    svc = EmbeddedServices.start()
    try:
        yield Services(svc.bootstrap, svc.redis_url, svc)
    finally:
        svc.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def key_prefix(unique: str) -> str:
    return f"t{unique}"


@pytest.fixture
def redis_client(services):
    import redis

    client = redis.Redis.from_url(services.redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_store(redis_client, key_prefix):
    from policy_store import RedisPolicyStore

    return RedisPolicyStore(redis_client, prefix=key_prefix)


@pytest.fixture
def topics(services, unique):
    from policy_store import Settings
    from producers import Topics, create_topics

    t = Topics(prefix=f"t{unique}.")
    create_topics(Settings(kafka_bootstrap=services.bootstrap), t, partitions=4)
    return t


@pytest.fixture
def settings(services, key_prefix, topics):
    from policy_store import Settings

    return Settings(
        kafka_bootstrap=services.bootstrap,
        redis_url=services.redis_url,
        key_prefix=key_prefix,
        topic_prefix=topics.prefix,
    )
