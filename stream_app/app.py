"""The Faust app, built by ``create_app(settings)``; nothing happens at import time.

The worker joins decisions and outcomes (co-partitioned by decision_id) into
rewards, sends them to the ``rewards`` topic and bad input to ``dlq``, and applies
reward batches to the policy store. Two engines do that with the same pure logic
(``_join``, ``_updater``):

- ``batch`` (default): ``_engine.BatchEngine``, a confluent-kafka consumer thread
  that processes up to ``batch_size`` messages at a time - join, publish rewards and
  the table changes (changelog ``<app id>-join-changelog``), apply the rewards,
  commit. Several thousand rewards/s per worker.
- ``agents``: plain Faust agents over a Faust table (``_agents``); simpler, Faust's
  table stores, about a quarter of the throughput.

Either way the Faust worker hosts the web server (``/metrics``, ``/ready``), the
timers (``flush_health`` writes the loop-health counters to Redis;
``refresh_configs`` keeps the policy configs the validation needs in memory) and
the lifecycle; workers with the same app id share the partitions as one group.

Faust settings for the embedded broker (Tansu): session and rebalance timeouts of
6 s and a 1 s heartbeat make (re)joins take ~3 s instead of ~30 s. The processing
guarantee is at-least-once (Tansu's transactions are not reliable); the exactly-once
effect on parameters comes from the idempotent apply.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
import redis

from policy_store import (
    PolicyConfig,
    PolicyStore,
    RedisPolicyStore,
    RewardSpec,
    Settings,
    UnknownPolicyError,
)
from producers import Topics

from ._agents import Agents, install_agents
from ._batch_join import JoinTables
from ._engine import BatchEngine, EngineOptions
from ._join import DEFAULT_WINDOW, TOMBSTONE_SECONDS
from ._metrics import CONTENT_TYPE_LATEST, HealthBuffer, WorkerMetrics
from ._updater import Updater

log = logging.getLogger(__name__)

FAST_REJOIN = {
    "broker_session_timeout": 6.0,
    "broker_rebalance_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
}


def _transport_class(fetch_max_wait_ms: int) -> type:
    """Faust's aiokafka transport with a shorter fetch long-poll.

    faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumer. A broker
    that holds a fetch until that wait expires instead of answering when data
    arrives (the embedded Tansu broker does) then adds up to 1.5 s per hop: the
    join and the updater are two hops between an outcome and the new parameters.
    """
    from faust.transport.drivers import aiokafka as fa

    class _ConsumerThread(fa.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport):  # type: ignore[override]
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by consumer.start()
            return consumer

    class _Consumer(fa.Consumer):
        def _new_consumer_thread(self):  # type: ignore[override]
            return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(fa.Transport):
        Consumer = _Consumer

    return _Transport


class ConfigCache:
    """Policy configs kept in memory, refreshed by a timer.

    A name not in the cache is looked up once (one Redis GET) and, if it does not
    exist, remembered as unknown for ``negative_ttl`` seconds, so a flood of events
    for a missing policy costs one round trip per second, not one per event.
    """

    def __init__(self, store: PolicyStore, negative_ttl: float = 1.0) -> None:
        self.store = store
        self.negative_ttl = negative_ttl
        self._configs: dict[str, PolicyConfig] = {}
        self._unknown: dict[str, float] = {}

    def refresh(self) -> None:
        """Reload every policy's config (blocking; a few Redis round trips)."""
        configs = {}
        for name in self.store.list_policies():
            try:
                configs[name] = self.store.get_config(name)
            except Exception:  # deleted meanwhile or unreadable: leave it out
                continue
        self._configs = configs

    def get(self, name: str) -> PolicyConfig | None:
        cfg = self._configs.get(name)
        if cfg is not None:
            return cfg
        now = time.monotonic()
        if self._unknown.get(name, 0.0) > now:
            return None
        try:
            cfg = self.store.get_config(name)
        except UnknownPolicyError:
            cfg = None
        except Exception as exc:  # store down: unknown for now
            log.warning("could not read the config of policy %r: %s", name, exc)
            cfg = None
        if cfg is None:
            if len(self._unknown) > 10_000:
                self._unknown = {k: t for k, t in self._unknown.items() if t > now}
            self._unknown[name] = now + self.negative_ttl
            return None
        self._configs = {**self._configs, name: cfg}
        return cfg

    def spec(self, name: str | None) -> RewardSpec | None:
        cfg = self.get(name) if name else None
        return cfg.reward if cfg is not None else None


@dataclass
class StreamApp:
    """A built app: the Faust app plus the parts tests and the CLI reach for."""

    app: faust.App
    settings: Settings
    topics: Topics
    updater: Updater
    configs: ConfigCache
    metrics: WorkerMetrics
    health: HealthBuffer
    engine: BatchEngine | None = None  # the batch engine
    agents: Agents | None = None  # the agents engine

    @property
    def ready(self) -> tuple[bool, list[str]]:
        """Whether the worker owns partitions and is not rebalancing, and which."""
        if self.engine is not None:
            return self.engine.ready, list(self.engine.assigned)
        app = self.app
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
        ok = bool(assigned) and not app.rebalancing and not getattr(app, "in_recovery", False)
        return ok, assigned

    def main(self) -> None:
        """Run a worker in this process (blocking), like ``faust worker``."""
        self.app.main()


def _credentials(settings: Settings) -> Any:
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ctx = None
    if proto in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if proto.startswith("SASL"):
        pw = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=pw.get_secret_value() if pw else None,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ctx,
        )
    return faust.SSLCredentials(ctx)


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    store: PolicyStore | None = None,
    datadir: str | None = None,
    web_port: int | None = None,
    web_enabled: bool = True,
    engine: str = "batch",
    table_store: str = "memory://",
    batch_size: int = 1000,
    batch_within: float = 0.05,
    sweep_interval: float = 1.0,
    health_interval: float = 1.0,
    config_refresh_interval: float = 5.0,
    default_window: float = DEFAULT_WINDOW,
    tombstone_seconds: float = TOMBSTONE_SECONDS,
    cohort_weights: Mapping[str, float] | None = None,
    fetch_max_wait_ms: int | None = 10,
    faust_options: Mapping[str, Any] | None = None,
) -> StreamApp:
    """Build the stream app for ``settings`` (topics, Redis, Kafka).

    ``app_id`` is the Faust app id and consumer group (default ``<key_prefix>-stream``);
    workers with the same id share the partitions. ``engine`` is ``"batch"`` (default)
    or ``"agents"`` (see the module docstring). ``batch_size`` bounds the messages per
    batch (batch engine) or the rewards per apply (agents); ``batch_within`` is the
    longest wait for a batch's first message (batch) or for a batch to fill (agents).
    ``faust_options`` override any Faust setting (e.g. ``{"web_port": 6067}``).
    """
    if engine not in ("batch", "agents"):
        raise ValueError(f"engine must be 'batch' or 'agents', not {engine!r}")
    topics = Topics.from_settings(settings)
    if store is None:
        store = RedisPolicyStore.from_url(
            settings.redis_url, prefix=settings.key_prefix, **settings.redis_kwargs()
        )
    app_id = app_id or f"{settings.key_prefix}-stream"
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        "store": table_store,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": web_enabled,
        "producer_acks": -1,
        "producer_linger": 0.05,
        "broker_commit_every": 100_000,
        **FAST_REJOIN,
    }
    creds = _credentials(settings)
    if creds is not None:
        conf["broker_credentials"] = creds
    if datadir is not None:
        conf["datadir"] = datadir
    if web_port is not None:
        conf["web_port"] = web_port
    conf.update(faust_options or {})
    app = faust.App(app_id, **conf)
    if fetch_max_wait_ms is not None:
        transport_cls = _transport_class(fetch_max_wait_ms)
        app._new_transport = lambda: transport_cls(app.conf.broker_consumer, app)  # type: ignore[method-assign]

    metrics = WorkerMetrics()
    health = HealthBuffer()
    configs = ConfigCache(store)
    updater = Updater(store, metrics, cohort_weights=cohort_weights)
    sa = StreamApp(
        app=app,
        settings=settings,
        topics=topics,
        updater=updater,
        configs=configs,
        metrics=metrics,
        health=health,
    )

    if engine == "agents":
        sa.agents = install_agents(
            app,
            topics,
            settings.topic_partitions,
            configs,
            metrics,
            health,
            updater,
            batch_size=batch_size,
            batch_within=batch_within,
            sweep_interval=sweep_interval,
            default_window=default_window,
            tombstone_seconds=tombstone_seconds,
        )
    else:
        join = JoinTables(
            configs.get,
            default_window=default_window,
            retention=tombstone_seconds,
            metrics=metrics,
            health=health,
        )
        options = EngineOptions(
            batch_size=batch_size, poll_wait=batch_within, sweep_interval=sweep_interval
        )
        sa.engine = BatchEngine(settings, topics, app_id, join, updater, options=options)
        _run_with_worker(app, sa.engine)

    if isinstance(store, RedisPolicyStore):
        redis_store = store

        @app.timer(health_interval, name="flush_health")
        async def _flush_health() -> None:
            try:
                await app.loop.run_in_executor(
                    None, health.flush, redis_store.client, redis_store.prefix
                )
            except redis.RedisError as exc:
                log.warning("could not write health counters (kept for the next try): %s", exc)

    @app.timer(config_refresh_interval, name="refresh_configs")
    async def _refresh_configs() -> None:
        try:
            await app.loop.run_in_executor(None, configs.refresh)
        except Exception as exc:
            log.warning("could not refresh policy configs: %s", exc)

    if web_enabled:

        @app.page("/metrics")
        async def _metrics_view(self, request):
            return self.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        @app.page("/ready")
        async def _ready_view(self, request):
            ok, assigned = sa.ready
            return self.json({"ready": ok, "assigned": assigned}, status=200 if ok else 503)

    return sa


def _run_with_worker(app: faust.App, engine: BatchEngine) -> None:
    """Start the engine's thread with the Faust worker and stop it with the worker."""
    import mode

    @app.service
    class _Engine(mode.Service):
        async def on_start(self) -> None:
            engine.start()

        async def on_stop(self) -> None:
            await self.loop.run_in_executor(None, engine.stop)


__all__ = ["FAST_REJOIN", "ConfigCache", "StreamApp", "create_app"]
