"""A worker killed with SIGKILL three times during 50,000 rewards: nothing lost, nothing twice.

The traffic is seeded, so the test knows which arm each decision served. 1% of the
pairs are sent a second time at the end (a producer retry), so "distinct" matters.
After the last restart every arm's ``n`` in Redis must equal the number of distinct
rewarded decisions for that arm, exactly.

The size is ``RL_COMMONS_FAULT_REWARDS`` (default 50,000, the acceptance figure: about
3 minutes on an otherwise idle 2-core machine; set it lower for a quick local run).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from _traffic import (
    expected_counts,
    make_pairs,
    produce_pairs,
    raw_producer,
    wait_for_progress,
    worker_activity,
)
from _worker_proc import WorkerProcess

from policy_store import Settings

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

N_DECISIONS = int(os.environ.get("RL_COMMONS_FAULT_REWARDS", "50000"))
KILLS = 3
ARMS = ["gpt-4", "claude-3", "llama", "mistral"]
D = 4


def _settings(svc) -> Settings:
    return Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )


def _applied(store) -> dict[str, float]:
    return {arm: s.n for arm, s in store.read_state("p").arms.items()}


def test_sigkill_three_times_mid_stream_loses_and_doubles_nothing(fault_services, tmp_path):
    svc = fault_services
    svc.create_policy("p", ARMS, D)
    store = svc.store()
    pairs = make_pairs(N_DECISIONS, policy="p", arms=ARMS, n_features=D, seed=8)
    duplicates = pairs[:: len(pairs) // (N_DECISIONS // 100)]
    expected = expected_counts([*pairs, *duplicates])
    assert sum(expected.values()) == N_DECISIONS

    producer = raw_producer(svc.bootstrap)
    produced = threading.Event()
    chunk = max(1_000, N_DECISIONS // 10)

    def send() -> None:  # paced, so the first kill lands while traffic is still arriving
        for i in range(0, len(pairs), chunk):
            produce_pairs(producer, svc.topics, pairs[i : i + chunk])
            producer.poll(0.2)
        produce_pairs(producer, svc.topics, duplicates)
        if producer.flush(60) == 0:
            produced.set()

    def total() -> float:
        return sum(_applied(store).values())

    settings = _settings(svc)
    app_id = f"{svc.key_prefix}-stream"
    workers = [WorkerProcess(settings, "w0", app_id=app_id, workdir=tmp_path)]
    sender = threading.Thread(target=send, daemon=True)
    kill_log: list[int] = []
    try:
        workers[0].start().wait_ready(120)
        t_start = time.monotonic()
        sender.start()
        for k in range(KILLS):
            target = N_DECISIONS * (k + 1) // (KILLS + 2)
            wait_for_progress(
                total,
                target,
                f"rewards applied before kill {k + 1}",
                activity=lambda: worker_activity(workers[-1]),
            )
            workers[-1].kill()
            kill_log.append(int(total()))
            workers.append(WorkerProcess(settings, f"w{k + 1}", app_id=app_id, workdir=tmp_path))
            workers[-1].start().wait_ready(120)
        sender.join(300)
        assert produced.is_set(), "the producer did not deliver everything"
        wait_for_progress(
            total,
            N_DECISIONS,
            "all rewards applied",
            activity=lambda: worker_activity(workers[-1]),
        )
        elapsed = time.monotonic() - t_start
        time.sleep(2.0)  # let any replayed batch land: it must change nothing
        applied = _applied(store)
    except BaseException:
        print(workers[-1].log_tail())
        raise
    finally:
        for w in workers:
            w.stop()
        producer.purge()
    print(
        f"{N_DECISIONS} rewards (+{len(duplicates)} duplicates), SIGKILL after {kill_log} applied;"
        f" all applied {elapsed:.1f}s after the traffic started; n per arm {applied}"
    )
    assert applied == {arm: float(n) for arm, n in expected.items()}
