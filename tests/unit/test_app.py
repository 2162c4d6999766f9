"""``create_app``: the Faust host runs no Kafka client of its own; wiring by store kind."""

from __future__ import annotations

from policy_store import InMemoryPolicyStore, RedisPolicyStore, Settings
from stream_app import create_app
from stream_app.aggregates import RedisAggregates


def test_the_faust_host_starts_no_kafka_consumer_or_producer(tmp_path):
    sa = create_app(
        Settings(topic_prefix="unit."),
        app_id="unit-app",
        store=InMemoryPolicyStore(),
        datadir=str(tmp_path),
        web_enabled=False,
    )
    services = list(sa.app.boot_strategy.server())
    assert sa.app.producer not in services and sa.app.consumer not in services
    assert sa.engine.group_id == "unit-app-engine"
    assert sa.engine.changelog == "unit-app-join-changelog"
    # an in-memory store gets no aggregate sink, hence no health-flush timer
    assert sa.sink is None and sa.updater.sink is None
    assert _timers(sa) == {"_refresh_configs"}
    assert not sa.ready[0]


def test_a_redis_store_gets_the_redis_aggregate_sink(tmp_path):
    store = RedisPolicyStore.from_url("redis://127.0.0.1:1/0", prefix="u")  # lazy: no connection
    sa = create_app(Settings(), store=store, datadir=str(tmp_path), web_enabled=False)
    assert isinstance(sa.sink, RedisAggregates) and sa.updater.sink is sa.sink
    assert sa.sink.prefix == "u" and sa.sink.client is store.client
    assert sa.engine.group_id == "rlc-stream-engine"
    assert _timers(sa) == {"_flush_health", "_refresh_configs"}


def _timers(sa) -> set[str]:
    return {t.__name__ for t in sa.app._app_tasks}  # the functions given to app.timer
