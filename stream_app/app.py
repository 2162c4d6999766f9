"""The Faust app, built by ``create_app(settings)``; nothing happens at import time.

Two agents and a few timers:

- ``join`` reads decisions and outcomes (co-partitioned by decision_id, one agent
  over both topics so the same worker owns partition p of both), keeps one entry
  per decision_id in the table ``join`` and sends rewards to the ``rewards`` topic
  and bad input to the ``dlq`` topic. The logic is ``_join`` (pure functions).
- ``updater`` reads rewards in batches (``stream.take_events(batch_size, within)``)
  and applies them through the store's idempotent ``apply``. Every message of a
  batch holds an extra reference until ``apply`` returned, so Faust cannot commit
  its offset earlier - not even when the worker is stopped during a Redis outage.
- timers: ``sweep`` closes windows (rewards with defaults, expiries) and drops old
  tombstones; ``flush_health`` writes the loop-health counters to Redis;
  ``refresh_configs`` keeps the policy configs the validation needs in memory.

State: ``store="memory://"`` by default, so the join table lives in memory and is
rebuilt from its changelog topic (``<app id>-join-changelog``) when a worker starts
or takes over partitions. Pass ``table_store="rocksdb://"`` when rocksdict is
installed to keep it on disk in ``datadir``.

Faust settings for the embedded broker (Tansu): session and rebalance timeouts of
6 s and a 1 s heartbeat make (re)joins take ~3 s instead of ~30 s. The processing
guarantee is at-least-once (Tansu's transactions are not reliable); the exactly-once
effect on parameters comes from the idempotent apply.
"""

from __future__ import annotations

import heapq
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
from producers import DLQRecord, EventError, RewardEvent, Topics

from ._join import DEFAULT_WINDOW, TOMBSTONE_SECONDS, Step, on_decision, on_outcome, on_tick
from ._metrics import CONTENT_TYPE_LATEST, HealthBuffer, WorkerMetrics
from ._updater import Updater
from ._validation import validate_decision, validate_outcome, validate_reward

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
    table: Any
    join: Any  # faust agent
    updater_agent: Any  # faust agent
    updater: Updater
    configs: ConfigCache
    metrics: WorkerMetrics
    health: HealthBuffer
    joiner: _Joiner

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


class _Joiner:
    """Moves events between Faust and the pure join functions."""

    def __init__(self, sa_topics: Topics, default_window: float, retention: float) -> None:
        self.names = sa_topics
        self.default_window = default_window
        self.retention = retention
        self.heap: list[tuple[float, str]] = []
        self.rebuild = True
        # set by create_app
        self.table: Any = None
        self.rewards_topic: Any = None
        self.dlq_topic: Any = None
        self.configs: ConfigCache = None  # type: ignore[assignment]
        self.metrics: WorkerMetrics = None  # type: ignore[assignment]
        self.health: HealthBuffer = None  # type: ignore[assignment]

    async def send_dlq(self, reason: str, detail: str, message: Any, policy: str | None) -> None:
        rec = DLQRecord.of(
            reason,  # type: ignore[arg-type]
            detail,
            message.value if isinstance(message.value, bytes) else bytes(message.value or b""),
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            timestamp=time.time(),
        )
        await self.dlq_topic.send(key=message.key, value=rec.to_bytes())
        self.metrics.dlq.labels(reason).inc()
        self.health.add(policy, {f"dlq:{reason}": 1})

    async def handle(self, event: Any) -> None:
        """One message from decisions or outcomes."""
        msg = event.message
        kind = self._kind(msg)
        self.metrics.events_in.labels(kind).inc()
        now = time.time()
        raw = msg.value
        try:
            if kind == "decisions":
                dec, cfg = validate_decision(raw, self.configs.get, msg.key)
                key = dec.decision_id
                step = on_decision(
                    self.table.get(key), dec, cfg.reward, now, retention=self.retention
                )
            else:
                out, cfg = validate_outcome(raw, self.configs.get, msg.key)
                key = out.decision_id
                state = self.table.get(key)
                spec = cfg.reward if cfg is not None else None
                if state is not None and state.get("policy"):
                    spec = self.configs.spec(state["policy"]) or spec
                if state is not None and state.get("d") is not None and spec is None:
                    spec = RewardSpec()  # its policy was deleted meanwhile
                step = on_outcome(
                    state, out, spec, now, self.default_window, retention=self.retention
                )
        except EventError as exc:
            await self.send_dlq(exc.reason, exc.detail, msg, None)
            return
        await self._emit(step, msg)
        if step.changed:
            if step.state is None:
                if key in self.table:
                    del self.table[key]
            else:
                self.table[key] = {**step.state, "p": msg.partition}
                heapq.heappush(self.heap, (step.state["deadline"], key))

    def _kind(self, msg: Any) -> str:
        if msg.topic == self.names.decisions:
            return "decisions"
        if msg.topic == self.names.outcomes:
            return "outcomes"
        # an in-memory channel (agent.test_context()): go by the event's type field
        return "decisions" if b'"type":"decision"' in (msg.value or b"")[:200] else "outcomes"

    async def _emit(self, step: Step, msg: Any, topic: str | None = None) -> None:
        kind = topic or self._kind(msg)
        self.metrics.count_join(step.counters, kind)
        self.health.add(step.policy, step.counters)
        for reason, detail in step.dlq:
            await self.send_dlq(reason, detail, msg, step.policy)
        for r in step.rewards:
            await self.rewards_topic.send(key=r.decision_id.encode(), value=r.to_bytes())

    async def sweep(self, app: faust.App) -> int:
        """Close entries whose deadline passed (only on partitions this worker owns)."""
        if app.rebalancing or getattr(app, "in_recovery", False):
            return 0
        now = time.time()
        data = self.table.data
        if self.rebuild:
            self.heap = [(v["deadline"], k) for k, v in data.items() if isinstance(v, dict)]
            heapq.heapify(self.heap)
            self.rebuild = False
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic in (self.names.decisions, self.names.outcomes)
        }
        due: list[tuple[str, dict, Step]] = []
        seen: set[str] = set()  # a key is in the heap once per write: close it once
        while self.heap and self.heap[0][0] <= now:
            _, key = heapq.heappop(self.heap)
            if key in seen:
                continue
            seen.add(key)
            state = data.get(key)
            if state is None or state["deadline"] > now or state.get("p") not in owned:
                continue
            policy = state.get("policy")
            step = on_tick(
                state,
                self.configs.spec(policy),
                now,
                self.default_window,
                retention=self.retention,
            )
            if step.changed:
                due.append((key, state, step))
        if not due:
            return 0
        # rewards first, and wait until the broker has them: a crash before the table
        # write below leaves the entry open, and the next sweep re-sends the same reward
        futures = []
        for _key, _state, step in due:
            self.metrics.count_join(step.counters, "sweep")
            self.health.add(step.policy, step.counters)
            for r in step.rewards:
                futures.append(
                    await self.rewards_topic.send(key=r.decision_id.encode(), value=r.to_bytes())
                )
        for fut in futures:
            await fut
        for key, state, step in due:
            if data.get(key) is not state:
                continue  # the agent changed it meanwhile; a repeated reward is deduped
            p = state["p"]
            if step.state is None:
                data.pop(key, None)
                self.table.send_changelog(p, key, None, value_serializer="raw")
            else:
                new = {**step.state, "p": p}
                data[key] = new
                self.table.send_changelog(p, key, new)
                heapq.heappush(self.heap, (new["deadline"], key))
        return len(due)


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    store: PolicyStore | None = None,
    datadir: str | None = None,
    web_port: int | None = None,
    web_enabled: bool = True,
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
    workers with the same id share the partitions. ``faust_options`` override any
    Faust setting (e.g. ``{"broker_commit_every": 100}``).
    """
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

    source = app.topic(
        topics.decisions, topics.outcomes, key_serializer="raw", value_serializer="raw"
    )
    rewards_topic = app.topic(topics.rewards, key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(topics.dlq, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        "join",
        default=None,
        partitions=settings.topic_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )

    joiner = _Joiner(topics, default_window, tombstone_seconds)
    joiner.table, joiner.rewards_topic, joiner.dlq_topic = table, rewards_topic, dlq_topic
    joiner.configs, joiner.metrics, joiner.health = configs, metrics, health

    @table.on_recover
    async def _recovered() -> None:
        joiner.rebuild = True

    async def join(stream):
        async for event in stream.events():
            await joiner.handle(event)

    join_agent = app.agent(source, name="join")(join)

    async def updater_loop(stream):
        async for events in stream.take_events(batch_size, within=batch_within):
            for ev in events:  # hold every offset until the store acknowledged the batch
                ev.message.incref()
            good: list[RewardEvent] = []
            for ev in events:
                metrics.events_in.labels("rewards").inc()
                try:
                    reward, _cfg = validate_reward(ev.value, configs.get)
                    good.append(reward)
                except EventError as exc:
                    await joiner.send_dlq(exc.reason, exc.detail, ev.message, None)
            result = await updater.apply_until_done(good)
            if result.rejected:
                by_key = {ev.message.key: ev.message for ev in events}
                for reward, reason, detail in result.rejected:
                    msg = by_key[reward.decision_id.encode()]
                    await joiner.send_dlq(reason, detail, msg, reward.policy)
            for ev in events:
                ev.ack()

    updater_agent = app.agent(rewards_topic, name="updater")(updater_loop)

    @app.timer(sweep_interval, name="sweep")
    async def _sweep() -> None:
        try:
            await joiner.sweep(app)
        except Exception:  # never let a timer kill the worker
            log.exception("sweep failed")

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
            assigned = sorted(
                f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()
            )
            ok = bool(assigned) and not app.rebalancing and not getattr(app, "in_recovery", False)
            return self.json({"ready": ok, "assigned": assigned}, status=200 if ok else 503)

    return StreamApp(
        app=app,
        settings=settings,
        topics=topics,
        table=table,
        join=join_agent,
        updater_agent=updater_agent,
        updater=updater,
        configs=configs,
        metrics=metrics,
        health=health,
        joiner=joiner,
    )


__all__ = ["FAST_REJOIN", "ConfigCache", "StreamApp", "create_app"]
