"""The proxy side of ``bench_pipeline_learning.py``: a stream worker in a child process
and one simulator stream played through a streaming ``ProviderSelector`` (see that
script's docstring for what is measured and how).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from policy_store import PolicyReader, RedisPolicyStore, Settings, make_config
from policy_store.simulator import Stream
from producers import EventProducer, ProviderSelector, Topics
from stream_app.dev import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent


# -- the stream worker -----------------------------------------------------------------------------
def start_worker(settings: Settings, workdir: Path, extra: list[str]) -> WorkerProcess:
    """``rl-commons worker`` in a child process (own process group, log in ``worker.log``)."""
    return WorkerProcess(
        settings,
        "worker",
        app_id=f"{settings.topic_prefix.rstrip('.')}-stream",
        workdir=workdir,
        args=extra,
        loglevel="warning",
        cwd=ROOT,
    ).start()


# -- one pipeline run ------------------------------------------------------------------------------
@dataclass
class PipelineRun:
    """What one stream played through the pipeline gave."""

    served: np.ndarray
    lag_rounds: np.ndarray  # per round: published outcomes the snapshot did not include
    used: np.ndarray  # per round: outcomes included in the snapshot that selected
    freshness: list[float] = field(default_factory=list)  # s, outcome publish → snapshot install
    seconds: float = 0.0
    dropped: int = 0
    applied: int = 0


def _request_features(request: dict) -> tuple:
    return request["x"]


def play_pipeline(
    stream: Stream,
    policy: str,
    settings: Settings,
    store: RedisPolicyStore,
    producer: EventProducer,
    seed: int,
    *,
    rate: float,
    response_delay: float,
    drain_timeout: float = 60.0,
) -> PipelineRun:
    """Serve every round of ``stream`` through a streaming ``ProviderSelector``."""
    K, d = stream.rewards.shape[1], stream.contexts.shape[1]
    arms = [f"arm{k}" for k in range(K)]
    store.create(make_config(name=policy, arms=arms, n_features=d))
    index = {a: k for k, a in enumerate(arms)}
    reader = PolicyReader(store, policy, poll_interval=settings.poll_interval, seed=seed)
    selector = ProviderSelector(
        feature_fn=_request_features,
        seed=seed,
        policy=policy,
        reader=reader,
        producer=producer,
        topics=Topics.from_settings(settings),
        owns_reader=False,
    )
    T = len(stream)
    contexts = [tuple(map(float, x)) for x in stream.contexts]
    served = np.empty(T, dtype=int)
    lag = np.empty(T, dtype=int)
    used = np.empty(T, dtype=int)
    sent_at: list[float] = []  # monotonic publication time of the i-th outcome
    due: list[tuple[float, int, str, float]] = []  # (time, round, decision_id, reward)
    freshness: list[float] = []
    seen_view = None
    dropped0 = producer.dropped

    def publish(item: tuple[float, int, str, float]) -> None:
        _, t, decision_id, r = item
        selector.report_outcome(
            decision_id,
            quality=r,
            cost=1.0 - r,
            latency=1.0 - r,
            final=True,
            provider=arms[served[t]],
        )
        sent_at.append(time.monotonic())

    try:
        if not reader.wait_for_version(0, timeout=10.0):
            raise RuntimeError(f"policy {policy!r} could not be loaded from Redis")
        start = time.monotonic()
        for t in range(T):
            slot = start + t / rate
            while True:  # publish the outcomes that are due, then wait for this request's slot
                now = time.monotonic()
                while due and due[0][0] <= now:
                    publish(heapq.heappop(due))
                if now >= slot:
                    break
                time.sleep(max(0.0, min(slot, due[0][0]) - now if due else slot - now))
            view = reader.view
            n_used = int(round(float(np.sum(view.snapshot.n))))
            if view is not seen_view:
                seen_view = view
                if n_used > 0 and n_used <= len(sent_at):
                    freshness.append(view.loaded_at - sent_at[n_used - 1])
            lag[t] = len(sent_at) - n_used
            used[t] = n_used
            decision = selector.select({"x": contexts[t]})
            served[t] = index[decision.provider]
            r = float(stream.rewards[t, served[t]])
            heapq.heappush(due, (time.monotonic() + response_delay, t, decision.decision_id, r))
        while due:
            item = heapq.heappop(due)
            time.sleep(max(0.0, item[0] - time.monotonic()))
            publish(item)
        seconds = time.monotonic() - start
        producer.flush(10.0)
        deadline = time.monotonic() + drain_timeout
        applied = 0
        while time.monotonic() < deadline:
            applied = int(round(sum(s.n for s in store.read_state(policy).arms.values())))
            if applied >= T:
                break
            time.sleep(0.1)
    finally:
        reader.close()
    return PipelineRun(
        served, lag, used, freshness, seconds, dropped=producer.dropped - dropped0, applied=applied
    )
