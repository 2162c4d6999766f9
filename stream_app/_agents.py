"""The ``agents`` engine: the join and the updater as plain Faust agents.

The join agent reads decisions and outcomes (one agent over both topics, so the
same worker owns partition p of both), keeps one entry per decision_id in the
Faust table ``join`` (changelogged to ``<app id>-join-changelog``) and sends rewards
and DLQ records; the updater agent reads rewards in batches
(``stream.take_events(batch_size, within)``) and applies them through the store's
idempotent ``apply``, holding every offset of a batch until ``apply`` returned; a
timer closes windows. Same pure functions as the default ``batch`` engine
(``_join``, ``_updater``), so both behave alike; this one is simpler and uses
Faust's tables (e.g. RocksDB with ``table_store``), at roughly a quarter of the
throughput (docs/stream.md).
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust

from producers import DLQRecord, EventError, RewardEvent, Topics

from ._join import Step, on_decision, on_outcome, on_tick, outcome_spec
from ._metrics import HealthBuffer, WorkerMetrics
from ._updater import Updater
from ._validation import validate_decision, validate_outcome, validate_reward

log = logging.getLogger(__name__)


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
        self.configs: Any = None  # ConfigCache
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
                named = cfg.reward if cfg is not None else None
                spec = outcome_spec(state, named, self.configs.spec)
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


@dataclass
class Agents:
    table: Any
    join: Any
    updater: Any
    joiner: _Joiner


def install_agents(
    app: faust.App,
    topics: Topics,
    partitions: int,
    configs: Any,
    metrics: WorkerMetrics,
    health: HealthBuffer,
    updater: Updater,
    *,
    batch_size: int,
    batch_within: float,
    sweep_interval: float,
    default_window: float,
    tombstone_seconds: float,
) -> Agents:
    """Add the join and updater agents, the table and the sweep timer to ``app``."""
    source = app.topic(
        topics.decisions, topics.outcomes, key_serializer="raw", value_serializer="raw"
    )
    rewards_topic = app.topic(topics.rewards, key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(topics.dlq, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        "join",
        default=None,
        partitions=partitions,
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

    return Agents(table=table, join=join_agent, updater=updater_agent, joiner=joiner)
