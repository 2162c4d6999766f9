"""Redis stopped for 10 s mid-stream.

- The stream worker pauses its apply and nothing else: it keeps joining (its decision
  and outcome offsets move on), commits no reward offset while Redis is down, retries
  (counted) and resumes by itself in the same process; afterwards every arm's ``n`` is
  exact, every reward was applied once (``rlc_applied_total`` = the rewards, no
  duplicates) and every reward offset is committed.
- The proxy's ``select`` never waits on Redis: its store records the thread of every
  call, and no call comes from the thread that selects (only the reader's background
  thread talks to Redis); no select raises.
- The proxy serves the learned policy while its snapshot is younger than the
  policy's ``max_staleness_seconds`` and the baseline only once it is older.

Redis keeps an append-only file, so the restart on the same port is an outage,
not a data loss (the fixture's docstring).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _traffic import (
    expected_counts,
    make_pairs,
    produce_pairs,
    raw_producer,
    wait_for_progress,
    wait_until,
    worker_activity,
    worker_counter,
)
from _worker_proc import WorkerProcess

from policy_store import PolicyReader, Settings
from producers import SafeProviderSelector

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

OUTAGE_SECONDS = 10.0
BOUND = 4.0  # the policy's max_staleness_seconds
PER_PHASE = 1_000
BLOCK = 1_000  # selects between two cohort samples
ARMS = ["gpt-4", "claude-3", "llama"]
D = 4


class _CallsByThread:
    """A store that counts the calls made on the thread that created it (the selecting one)."""

    def __init__(self, store) -> None:
        self._store = store
        self._thread = threading.get_ident()
        self.on_caller_thread = 0

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if threading.get_ident() == self._thread:
                self.on_caller_thread += 1
            return attr(*args, **kwargs)

        return call


def _selector(store, seed: int) -> tuple[SafeProviderSelector, PolicyReader]:
    reader = PolicyReader(store, "p", poll_interval=0.05, seed=seed)
    selector = SafeProviderSelector(
        exploration_rate=1.0,
        feature_fn=lambda request: request["x"],
        seed=seed,
        policy="p",
        reader=reader,
        owns_reader=True,
    )
    return selector, reader


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The offsets ``group`` committed on ``topic``, summed over its partitions: the number
    of its messages the group is done with (offsets start at 0 and have no gaps here)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def test_redis_outage_pauses_the_worker_and_not_the_proxy(fault_services, tmp_path):
    svc = fault_services
    config = dict(rollout_fraction=1.0, max_staleness_seconds=BOUND, baseline_arm="llama")
    svc.create_policy("p", ARMS, D, **config)
    store = svc.store()
    rng = np.random.default_rng(0)
    pairs = make_pairs(3 * PER_PHASE, policy="p", arms=ARMS, n_features=D, seed=5)
    expected = expected_counts(pairs)

    def applied() -> dict[str, float]:
        return {arm: s.n for arm, s in svc.store().read_state("p").arms.items()}

    def total() -> float:
        return sum(applied().values())

    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    app_id = f"{svc.key_prefix}-stream"
    worker = WorkerProcess(settings, "w0", app_id=app_id, workdir=tmp_path)
    producer = raw_producer(svc.bootstrap)
    proxy_store = _CallsByThread(store)
    proxy, reader = _selector(proxy_store, seed=1)
    request = {"x": tuple(rng.random(D))}
    cohorts: list[tuple[float, str, float]] = []  # staleness before, cohort, staleness after
    selects = {"calls": 0, "errors": 0}

    def select_for(seconds: float) -> None:
        """Select in blocks of ``BLOCK`` for ``seconds``, sampling the cohort after each."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(BLOCK):
                try:
                    proxy.select(request)
                except Exception:
                    selects["errors"] += 1
            selects["calls"] += BLOCK
            s0 = reader.staleness()
            cohort = proxy.select(request).cohort
            cohorts.append((s0, cohort, reader.staleness()))
            time.sleep(0.02)

    def committed(topic: str) -> int:
        return _committed(svc.bootstrap, f"{app_id}-engine", topic, svc.partitions)

    def wait_committed(topic: str, n: int) -> None:
        wait_until(lambda: committed(topic) == n, 30, f"{n} offsets of {topic} committed")

    try:
        worker.start().wait_ready(120)
        activity = lambda: worker_activity(worker)  # noqa: E731

        # Before: the loop works end to end.
        produce_pairs(producer, svc.topics, pairs[:PER_PHASE])
        producer.flush(30)
        wait_for_progress(total, PER_PHASE, "rewards before the outage", activity=activity)
        wait_until(lambda: reader.version == store.version("p"), 10, "the proxy to catch up")
        wait_committed(svc.topics.rewards, PER_PHASE)  # one reward per pair, none re-sent
        caller_calls_before = proxy_store.on_caller_thread
        select_for(2.0)
        assert {c for _, c, _ in cohorts} == {"rl"}

        # The outage: traffic keeps coming; the proxy keeps selecting.
        cohorts.clear()
        svc.stop_redis()
        produce_pairs(producer, svc.topics, pairs[PER_PHASE : 2 * PER_PHASE])
        producer.flush(30)
        select_for(OUTAGE_SECONDS)
        outage_cohorts = list(cohorts)
        # Keep Redis down until the worker has joined this phase's rewards and tried to apply.
        wait_for_progress(
            lambda: worker_counter(worker, "rlc_rewards_total"),
            2 * PER_PHASE,
            "rewards joined during the outage",
        )
        wait_until(
            lambda: worker_counter(worker, "rlc_apply_retries_total") > 0,
            120,
            "the worker to retry its apply",
        )
        # The join went on and committed its input; no reward offset moved, nothing applied.
        wait_committed(svc.topics.decisions, 2 * PER_PHASE)
        wait_committed(svc.topics.outcomes, 2 * PER_PHASE)
        rewards_committed_during = committed(svc.topics.rewards)
        applied_during = worker_counter(worker, "rlc_applied_total")
        svc.start_redis()
        assert worker.proc.poll() is None, "the worker must survive the outage"

        # After: the same worker resumes; the proxy returns to the learned policy.
        produce_pairs(producer, svc.topics, pairs[2 * PER_PHASE :])
        producer.flush(30)
        wait_for_progress(total, 3 * PER_PHASE, "rewards after the outage", activity=activity)
        wait_committed(svc.topics.rewards, 3 * PER_PHASE)
        wait_until(lambda: reader.staleness() < 1.0, 15, "the proxy's snapshot to refresh")
        assert proxy.select(request).cohort == "rl"
        final = applied()
        retries = worker_counter(worker, "rlc_apply_retries_total")
        applied_total = worker_counter(worker, "rlc_applied_total")
        duplicates = worker_counter(worker, 'rlc_duplicates_total{topic="rewards"}')
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
        proxy.close()
        producer.purge()

    # Counts exact: every reward applied once, none lost while Redis was away.
    assert final == {arm: float(n) for arm, n in expected.items()}
    assert applied_total == 3 * PER_PHASE and duplicates == 0
    # Nothing of the outage's rewards was applied or committed before Redis had them.
    assert rewards_committed_during == PER_PHASE and applied_during == PER_PHASE
    assert retries >= 1
    print(
        f"worker: {retries:.0f} apply retries during the outage, then resumed; "
        f"proxy: {selects['calls']} selects, {len(outage_cohorts)} samples during the outage"
    )

    # select never called Redis on its own thread, and never raised.
    assert proxy_store.on_caller_thread == caller_calls_before
    assert selects["errors"] == 0

    # Baseline only once the snapshot is older than the bound, the learned policy before.
    assert all(c == "rl" for _, c, s1 in outage_cohorts if s1 < BOUND)
    assert all(c == "baseline" for s0, c, _ in outage_cohorts if s0 > BOUND)
    assert {c for _, c, _ in outage_cohorts} == {"rl", "baseline"}
