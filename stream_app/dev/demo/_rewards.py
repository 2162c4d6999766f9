"""Collect the stream app's rewards for the demo's live figures, rollout steps and report.

A confluent-kafka consumer in a background thread reads the ``rewards`` topic from
the beginning (its own consumer group) and keeps the ``RewardEvent``s of one policy
whose decisions were made after ``since`` (Unix seconds), each decision once.
``collector_wait`` waits for the stream to catch up; ``headline`` picks a cohort
report's headline figures for ``summary.json``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from policy_store.evaluation import json_safe
from producers import EventError, RewardEvent, parse_event

log = logging.getLogger(__name__)


class RewardCollector:
    """Background reader of the rewards topic; ``snapshot()`` returns what arrived so far."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        policy: str,
        *,
        since: float | None = None,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.since = since
        self.topic = topic
        self.policy = policy
        self._client_config = dict(client_config or {})
        self._rewards: list[RewardEvent] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invalid = 0

    def start(self) -> RewardCollector:
        from confluent_kafka import Consumer

        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"rlc-demo-report-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                **self._client_config,
            }
        )
        self._consumer.subscribe([self.topic])
        self._thread = threading.Thread(target=self._run, name="demo-rewards", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msgs = self._consumer.consume(num_messages=500, timeout=0.2)
            except Exception as exc:  # broker gone while stopping
                log.debug("reward consumer: %s", exc)
                self._stop.wait(0.2)
                continue
            fresh = []
            for m in msgs:
                if m.error() or m.value() is None:
                    continue
                try:
                    ev = parse_event(m.value(), RewardEvent)
                except EventError:
                    self.invalid += 1
                    continue
                if ev.policy == self.policy and (
                    self.since is None or ev.decision_ts >= self.since
                ):
                    fresh.append(ev)
            if fresh:
                with self._lock:
                    for ev in fresh:
                        if ev.decision_id not in self._seen:  # at-least-once delivery
                            self._seen.add(ev.decision_id)
                            self._rewards.append(ev)

    def snapshot(self) -> list[RewardEvent]:
        with self._lock:
            return list(self._rewards)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rewards)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            try:
                self._consumer.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                pass


def headline(report: Any) -> dict[str, Any]:
    """Cost reduction, quality difference and constraint verdict of a cohort report."""
    return {
        "cost_reduction": json_safe(report.cost_reduction.to_dict()),
        "quality_difference": json_safe(report.quality_difference.to_dict()),
        "verdict": report.constraint.verdict if report.constraint is not None else None,
    }


def collector_wait(collector: RewardCollector, expected: int, timeout: float) -> None:
    """Wait until the stream has rewarded (almost) every request, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(collector) < expected:
        time.sleep(0.2)
