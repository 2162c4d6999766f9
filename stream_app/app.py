"""The stream worker, built by ``create_app(settings)``; nothing happens at import time.

The worker joins decisions and outcomes (co-partitioned by decision_id) into
rewards, sends them to the ``rewards`` topic and bad input to ``dlq``, and applies
reward batches to the policy store. One engine does all of that:
``_engine.BatchEngine``, a confluent-kafka consumer thread working in batches
(consumer group ``<app id>-engine``, changelog ``<app id>-join-changelog``).

The Faust worker hosts it: it starts and stops the engine's thread with its
lifecycle, serves the web server (``/metrics``, ``/ready``) and runs the timers
(``flush_health`` writes the loop-health counters to the aggregate sink;
``refresh_configs`` keeps the policy configs the validation needs in memory).
Faust itself touches no Kafka: the app's boot strategy leaves out Faust's consumer
and producer (there are no agents, tables or topics), so it joins no consumer group,
creates no topic and fetches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.app import BootStrategy

from policy_store import (
    PolicyStore,
    RedisPolicyStore,
    Settings,
)
from producers import Topics

from ._batch_join import JoinTables
from ._clients import ConfluentClients
from ._config_cache import ConfigCache, held_key
from ._engine import BatchEngine, EngineOptions
from ._join import DEFAULT_WINDOW, TOMBSTONE_SECONDS
from ._metrics import CONTENT_TYPE_LATEST, HealthBuffer, WorkerMetrics
from ._record import ChangeRelay, read_policy_records
from ._updater import DEDUPE_MARGIN, Updater
from .aggregates import AggregateSink, RedisAggregates

log = logging.getLogger(__name__)


@dataclass
class StreamApp:
    """A built worker: the Faust app that hosts it plus the parts tests and the CLI reach for."""

    app: faust.App
    settings: Settings
    topics: Topics
    engine: BatchEngine
    updater: Updater
    configs: ConfigCache
    metrics: WorkerMetrics
    health: HealthBuffer
    sink: AggregateSink | None = None

    @property
    def ready(self) -> tuple[bool, list[str]]:
        """Whether the worker owns partitions, is not rebalancing and applies its rewards,
        and which partitions (``engine.problem`` says why it does not apply)."""
        return self.engine.ready, list(self.engine.assigned)

    def main(self) -> None:
        """Run a worker in this process (blocking), like ``faust worker``."""
        self.app.main()


class _NoKafka(BootStrategy):
    """Faust's services minus its Kafka consumer and producer (the engine owns Kafka)."""

    enable_kafka = False


class _HostApp(faust.App):
    BootStrategy = _NoKafka


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    store: PolicyStore | None = None,
    datadir: str | None = None,
    web_port: int | None = None,
    web_enabled: bool = True,
    batch_size: int = 1000,
    batch_within: float = 0.05,
    sweep_interval: float = 1.0,
    health_interval: float = 1.0,
    config_refresh_interval: float = 5.0,
    default_window: float = DEFAULT_WINDOW,
    tombstone_seconds: float = TOMBSTONE_SECONDS,
    checkpoint_every: int = 10_000,
    checkpoint_ratio: float = 4.0,
    cohort_weights: Mapping[str, float] | None = None,
    faust_options: Mapping[str, Any] | None = None,
) -> StreamApp:
    """Build the stream worker for ``settings`` (topics, Redis, Kafka).

    ``app_id`` (default ``<key_prefix>-stream``) names the consumer group
    ``<app id>-engine`` and the changelog ``<app id>-join-changelog``; workers with the
    same id share the partitions. ``store`` defaults to the Redis store of
    ``settings`` (then the dashboard's aggregates are written beside it; with another
    store only the parameters). ``batch_size`` bounds the messages per batch,
    ``batch_within`` is the longest wait for a batch's first message.
    ``checkpoint_every`` / ``checkpoint_ratio``: when a join table is checkpointed
    (``EngineOptions``; ``checkpoint_every`` 0: never).
    ``faust_options`` override any Faust setting (e.g. ``{"web_bind": "0.0.0.0"}``).
    """
    topics = Topics.from_settings(settings)
    if store is None:
        store = RedisPolicyStore.from_settings(settings)
    sink: AggregateSink | None = None
    if isinstance(store, RedisPolicyStore):  # the dashboard's aggregates live beside it
        sink = RedisAggregates(store.client, store.prefix)
    app_id = app_id or f"{settings.key_prefix}-stream"
    app = _faust_app(app_id, datadir, web_port, web_enabled, faust_options)

    metrics = WorkerMetrics()
    health = HealthBuffer()
    configs = ConfigCache(store)
    updater = Updater(
        store,
        metrics,
        sink=sink,
        cohort_weights=cohort_weights,
        dedupe_window=tombstone_seconds + DEDUPE_MARGIN,
        lost=configs.lost,
        waiting=configs.waiting,
        versions=configs,
    )
    join = JoinTables(
        configs,
        default_window=default_window,
        retention=tombstone_seconds,
        metrics=metrics,
        health=health,
    )
    options = EngineOptions(
        batch_size=batch_size,
        poll_wait=batch_within,
        sweep_interval=sweep_interval,
        checkpoint_every=checkpoint_every,
        checkpoint_ratio=checkpoint_ratio,
    )
    clients = ConfluentClients(settings, topics)
    engine = BatchEngine(topics, join, updater, clients, app_id=app_id, options=options)
    sa = StreamApp(app, settings, topics, engine, updater, configs, metrics, health, sink)

    relay = None
    if isinstance(store, RedisPolicyStore):  # recorded config changes -> the policies topic
        relay = ChangeRelay(store, settings, on_change=configs.on_record)
    _run_with_worker(app, engine, relay, configs)
    _add_timers(sa, health_interval, config_refresh_interval)
    if web_enabled:
        _add_views(sa)
    return sa


def _faust_app(
    app_id: str,
    datadir: str | None,
    web_port: int | None,
    web_enabled: bool,
    options: Mapping[str, Any] | None,
) -> faust.App:
    conf: dict[str, Any] = {"web_enabled": web_enabled}
    if datadir is not None:
        conf["datadir"] = datadir
    if web_port is not None:
        conf["web_port"] = web_port
    conf.update(options or {})
    return _HostApp(app_id, **conf)


def _run_with_worker(
    app: faust.App, engine: BatchEngine, relay: ChangeRelay | None, configs: ConfigCache
) -> None:
    """Start the engine's (and the change relay's) thread with the Faust worker and stop
    them with the worker. With a relay, the policies topic is read first: a policy it
    records and Redis lacks (a wipe before this worker started) is held, not unknown."""
    import mode

    @app.service
    class _Engine(mode.Service):
        async def on_start(self) -> None:
            if relay is not None:
                await self.loop.run_in_executor(None, _remember_records, configs, relay)
            engine.start()
            if relay is not None:
                relay.start()

        async def on_stop(self) -> None:
            if relay is not None:
                await self.loop.run_in_executor(None, relay.stop)
            await self.loop.run_in_executor(None, engine.stop)


def _remember_records(configs: ConfigCache, relay: ChangeRelay) -> None:
    try:
        configs.remember(read_policy_records(relay.settings, timeout=10.0).values())
    except Exception as exc:  # Kafka not there yet: policies unknown to Redis stay unknown
        log.warning("could not read the policy records from %s: %s", relay.topic, exc)


def _add_timers(sa: StreamApp, health_interval: float, config_refresh_interval: float) -> None:
    """Health counters to the sink (if any) and the config refresh, off the event loop."""
    app, sink = sa.app, sa.sink
    if sink is not None:

        @app.timer(health_interval, name="flush_health")
        async def _flush_health() -> None:
            try:
                await app.loop.run_in_executor(None, sa.health.flush, sink)
            except Exception as exc:
                log.warning("could not write health counters (kept for the next try): %s", exc)

    @app.timer(config_refresh_interval, name="refresh_configs")
    async def _refresh_configs() -> None:
        try:
            await app.loop.run_in_executor(None, sa.configs.refresh)
        except Exception as exc:
            log.warning("could not refresh policy configs: %s", exc)


def _add_views(sa: StreamApp) -> None:
    """``/metrics`` (Prometheus) and ``/ready`` (200 once partitions are owned and rewards
    are applied, else 503; ``reason`` says why rewards are not applied, e.g. Redis out of
    memory)."""

    @sa.app.page("/metrics")
    async def _metrics_view(self, request):
        return self.bytes(sa.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @sa.app.page("/ready")
    async def _ready_view(self, request):
        ok, assigned = sa.ready
        body = {"ready": ok, "assigned": assigned, "reason": sa.engine.problem}
        return self.json(body, status=200 if ok else 503)


__all__ = ["ConfigCache", "StreamApp", "create_app", "held_key"]
