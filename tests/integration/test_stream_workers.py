"""Several workers and crashes: shared partitions, SIGKILL mid-stream and restart."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict

import pytest

from producers import RewardEvent
from tests._worker_proc import WorkerProcess
from tests.integration._stream_helpers import (
    ARMS,
    FULL,
    Sender,
    arm_counts,
    decision,
    make_policy,
    outcome,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration


def _assigned(w: WorkerProcess, topic: str) -> set[int]:
    status, body = w.get("/ready")
    if status != 200:
        return set()
    return {
        int(a.rsplit(":", 1)[1]) for a in json.loads(body)["assigned"] if a.startswith(topic + ":")
    }


def _rewarded_per_arm(bootstrap: str, topic: str, policy: str) -> dict[str, int]:
    ids: dict[str, set[str]] = defaultdict(set)
    for m in read_topic(bootstrap, topic):
        r = RewardEvent.model_validate_json(m.value())
        if r.policy == policy:
            ids[r.arm].add(r.decision_id)
    return {arm: len(v) for arm, v in ids.items()}


def test_two_workers_share_the_partitions(
    services, settings, topics, redis_store, unique, tmp_path
):
    make_policy(redis_store, "route")
    workers = [
        WorkerProcess(settings, f"w{i}", app_id=f"g{unique}", workdir=tmp_path) for i in (1, 2)
    ]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready()

        def split() -> bool:
            a, b = (_assigned(w, topics.decisions) for w in workers)
            o = [_assigned(w, topics.outcomes) for w in workers]
            return bool(a) and bool(b) and not (a & b) and a | b == {0, 1, 2, 3} and o == [a, b]

        wait_for(split, 40, "both workers to own disjoint, co-partitioned halves")
        n = 200
        rng = random.Random(7)
        arms = [rng.choice(ARMS) for _ in range(n)]
        s = Sender(services.bootstrap, topics)
        s.send_all(decision(i, arm=arms[i]) for i in range(n))
        s.send_all(outcome(i, **FULL) for i in range(n))
        expected = {a: float(arms.count(a)) for a in ARMS if a in arms}
        wait_for(lambda: arm_counts(redis_store) == expected, 40, f"n == {expected}")
        for w in workers:  # both did part of the join
            assert "rlc_joined_total" in w.metrics()
            joined = [
                float(line.split()[-1])
                for line in w.metrics().splitlines()
                if line.startswith("rlc_joined_total")
            ]
            assert joined and joined[0] > 0
    finally:
        for w in workers:
            w.stop()


def test_sigkill_mid_stream_then_restart_counts_every_reward_exactly_once(
    services, settings, topics, redis_store, unique, tmp_path
):
    """Kill -9 a worker while it joins and applies, start another one: every arm's n equals
    the number of distinct rewarded decisions for it - nothing lost, nothing twice."""
    make_policy(redis_store, "route")
    n = 3000
    rng = random.Random(11)
    arms = [rng.choice(ARMS) for _ in range(n)]
    group = f"g{unique}"
    first = WorkerProcess(settings, "w1", app_id=group, workdir=tmp_path).start()
    second = WorkerProcess(settings, "w2", app_id=group, workdir=tmp_path)
    sent = threading.Event()

    def produce() -> None:
        s = Sender(services.bootstrap, topics)
        for i in range(n):
            s.send(decision(i, arm=arms[i]))
            s.send(outcome(i, **FULL))
            if i % 100 == 99:
                time.sleep(0.05)  # ~2,000 pairs/s: the stream is still flowing at the kill
        s.flush()
        sent.set()

    try:
        first.wait_ready()
        t = threading.Thread(target=produce, daemon=True)
        t.start()
        # kill once the worker has applied part of the stream
        wait_for(lambda: sum(arm_counts(redis_store).values()) >= 300, 30, "first rewards")
        first.kill()
        killed_at = sum(arm_counts(redis_store).values())
        second.start()
        second.wait_ready()
        t.join(60)
        assert sent.is_set()
        expected = {a: float(arms.count(a)) for a in ARMS}
        wait_for(lambda: arm_counts(redis_store) == expected, 60, f"n == {expected}")
        assert killed_at < n, "the kill came after the whole stream was applied"
        time.sleep(1.0)  # nothing more arrives later (no replays counted twice)
        counts = arm_counts(redis_store)
        # every decision had a final outcome, so each one is a distinct rewarded decision:
        # n per arm equals them exactly (nothing lost, nothing counted twice)
        assert counts == expected
        # the rewards topic holds re-sent copies (after the kill) but no stranger
        rewarded = _rewarded_per_arm(services.bootstrap, topics.rewards, "route")
        assert all(rewarded.get(a, 0) <= counts[a] for a in ARMS), (rewarded, counts)
    finally:
        first.kill()
        second.stop()
