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

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.app import BootStrategy

from policy_store import (
    PolicyConfig,
    PolicyStore,
    RedisPolicyStore,
    RewardSpec,
    Settings,
    UnknownPolicyError,
)
from producers import Topics

from ._batch_join import JoinTables
from ._clients import ConfluentClients
from ._engine import BatchEngine, EngineOptions
from ._join import DEFAULT_WINDOW, TOMBSTONE_SECONDS
from ._metrics import CONTENT_TYPE_LATEST, HealthBuffer, WorkerMetrics
from ._record import ChangeRelay, PolicyRecord, rebuilding_key
from ._updater import DEDUPE_MARGIN, Updater
from .aggregates import AggregateSink, RedisAggregates

log = logging.getLogger(__name__)


class ConfigCache:
    """Policy configs kept in memory, refreshed by a timer and at once on a recorded change.

    A name not in the cache is looked up once (one Redis GET) and, if it does not
    exist, remembered as unknown for ``negative_ttl`` seconds, so a flood of events
    for a missing policy costs one round trip per second, not one per event.

    ``reload(name)`` reads one config again (at most every ``reload_interval`` s per
    name): validation asks before it refuses an unknown arm, and the change relay after
    every recorded change. A policy the cache knew whose config disappeared without a
    recorded deletion is **lost** (a wiped Redis, or one restarted without persistence):
    its config stays cached, so the join goes on, and ``lost(name)`` says why, so the
    updater holds its rewards instead of dead-lettering them; the policy is also listed
    in ``{prefix}:held`` for ``inspect`` and the dashboard. It is found again as soon as
    its config is back (``rl-commons rebuild`` or re-created).
    """

    def __init__(
        self, store: PolicyStore, negative_ttl: float = 1.0, reload_interval: float = 0.1
    ) -> None:
        self.store = store
        self.negative_ttl = negative_ttl
        self.reload_interval = reload_interval
        self._configs: dict[str, PolicyConfig] = {}
        self._unknown: dict[str, float] = {}
        self._reloaded: dict[str, float] = {}
        self._deleted: set[str] = set()
        self._lost: dict[str, str] = {}

    def __call__(self, name: str) -> PolicyConfig | None:
        return self.get(name)

    def refresh(self) -> None:
        """Reload every policy's config (blocking; a few Redis round trips). A policy
        known before and missing now is kept (lost) unless its deletion was recorded."""
        configs = {}
        for name in self.store.list_policies():
            try:
                configs[name] = self.store.get_config(name)
            except Exception:  # deleted meanwhile or unreadable: leave it out
                continue
            if name in self._lost:
                self.waiting(name)  # found again unless a rebuild of it still runs
        for name, cfg in self._configs.items():
            if name not in configs and name not in self._deleted:
                configs[name] = cfg
        self._configs = configs

    def get(self, name: str) -> PolicyConfig | None:
        cfg = self._configs.get(name)
        if cfg is not None:
            return cfg
        now = time.monotonic()
        if self._unknown.get(name, 0.0) > now:
            return None
        cfg = self._read(name)
        if cfg is None:
            if len(self._unknown) > 10_000:
                self._unknown = {k: t for k, t in self._unknown.items() if t > now}
            self._unknown[name] = now + self.negative_ttl
            return None
        self._configs = {**self._configs, name: cfg}
        return cfg

    def _read(self, name: str) -> PolicyConfig | None:
        try:
            return self.store.get_config(name)
        except UnknownPolicyError:
            return None
        except Exception as exc:  # store down: unknown for now
            log.warning("could not read the config of policy %r: %s", name, exc)
            return None

    def reload(self, name: str, force: bool = False) -> PolicyConfig | None:
        """The config of ``name`` read again now (None: none in the store); without
        ``force`` at most once per ``reload_interval`` s per name (else the cached one)."""
        now = time.monotonic()
        if not force and self._reloaded.get(name, 0.0) > now:
            return self._configs.get(name)
        self._reloaded[name] = now + self.reload_interval
        cfg = self._read(name)
        if cfg is not None:
            self._deleted.discard(name)
            self._unknown.pop(name, None)
            self._configs = {**self._configs, name: cfg}
            if name in self._lost:
                self.waiting(name)  # found again unless a rebuild of it still runs
        return cfg

    def on_record(self, record: PolicyRecord) -> None:
        """A recorded change (``ChangeRelay``): forget a deleted policy, reload another."""
        if record.config is None:
            self._deleted.add(record.name)
            self._configs = {k: v for k, v in self._configs.items() if k != record.name}
            self.found(record.name)
        else:
            self.reload(record.name, force=True)

    def lost(self, name: str) -> str | None:
        """Why ``name``, which the store does not hold, is lost rather than deleted (the
        cache knew it and no deletion was recorded), or None."""
        if name in self._deleted or name not in self._configs:
            return None
        if name not in self._lost:
            why = (
                f"its config is gone from Redis but its deletion was never recorded (Redis "
                f"wiped or restarted without persistence?); its rewards wait uncommitted — "
                f"restore it with `rl-commons rebuild {name}` (or re-create it)"
            )
            self._lost[name] = why
            self._mark_held(name, why)
        return self._lost[name]

    def waiting(self, name: str) -> str | None:
        """Why the rewards of a lost policy still wait (None when it is not lost, or its
        config is back and no ``rl-commons rebuild`` of it is running)."""
        if name not in self._lost:
            return None
        why = self._lost[name]
        if isinstance(self.store, RedisPolicyStore):
            k = self.store.keys(name)
            try:
                config, rebuilding = self.store.client.mget([k.config, rebuilding_key(k)])
            except Exception:  # Redis down: keep waiting
                return why
            if rebuilding is not None:
                return f"being rebuilt (rl-commons rebuild); {why}"
            if config is None:
                return why
        elif self._read(name) is None:
            return why
        self.found(name)
        return None

    def found(self, name: str) -> None:
        """``name`` has its config again (or was deleted): no longer lost."""
        if self._lost.pop(name, None) is not None:
            self._mark_held(name, None)

    def _mark_held(self, name: str, why: str | None) -> None:
        if not isinstance(self.store, RedisPolicyStore):
            return
        key, client = held_key(self.store.prefix), self.store.client
        try:
            if why is None:
                client.hdel(key, name)
            else:
                client.hset(key, name, json.dumps({"since": time.time(), "reason": why}))
        except Exception as exc:  # Redis down: /ready still says it
            log.debug("could not mark policy %r held: %s", name, exc)

    def spec(self, name: str | None) -> RewardSpec | None:
        cfg = self.get(name) if name else None
        return cfg.reward if cfg is not None else None


def held_key(prefix: str) -> str:
    """The hash of policies whose rewards the workers hold (name -> JSON since, reason;
    read by ``held_policies``)."""
    return f"{prefix}:held"


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
    )
    join = JoinTables(
        configs,
        default_window=default_window,
        retention=tombstone_seconds,
        metrics=metrics,
        health=health,
    )
    options = EngineOptions(
        batch_size=batch_size, poll_wait=batch_within, sweep_interval=sweep_interval
    )
    clients = ConfluentClients(settings, topics)
    engine = BatchEngine(topics, join, updater, clients, app_id=app_id, options=options)
    sa = StreamApp(app, settings, topics, engine, updater, configs, metrics, health, sink)

    relay = None
    if isinstance(store, RedisPolicyStore):  # recorded config changes -> the policies topic
        relay = ChangeRelay(store, settings, on_change=configs.on_record)
    _run_with_worker(app, engine, relay)
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


def _run_with_worker(app: faust.App, engine: BatchEngine, relay: ChangeRelay | None) -> None:
    """Start the engine's (and the change relay's) thread with the Faust worker and stop
    them with the worker."""
    import mode

    @app.service
    class _Engine(mode.Service):
        async def on_start(self) -> None:
            engine.start()
            if relay is not None:
                relay.start()

        async def on_stop(self) -> None:
            if relay is not None:
                await self.loop.run_in_executor(None, relay.stop)
            await self.loop.run_in_executor(None, engine.stop)


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
