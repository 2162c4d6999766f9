"""A poison reward among 10,000: it goes to the DLQ, the other 9,999 are applied.

The poison is a reward on the rewards topic that is finite and valid alone, but whose
contribution would make its arm's stored sums infinite (the arm already holds b ≈ 1e308).
The store refuses every batch that contains it; the worker's updater splits such a batch
until the poison is alone, sends it to the DLQ and applies everything else. The partition
never stops: no engine restart, no apply retry (a refusal is not retried), every reward
offset committed.
"""

from __future__ import annotations

import pytest
from _traffic import (
    expected_counts,
    make_pairs,
    produce_pairs,
    raw_producer,
    read_topic,
    wait_for_progress,
    worker_activity,
    worker_counter,
)
from _worker_proc import WorkerProcess

from policy_store import Observation, Settings
from producers import DLQRecord, RewardEvent

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

ARMS = ["gpt-4", "claude-3", "llama"]
D = 4
N = 10_000
HUGE = (1e6, 0.0, 0.0, 0.0)  # within the features' bound; 1e302 · 1e6 = 1e308 per reward


def _poison() -> RewardEvent:
    return RewardEvent(
        decision_id="poison",
        policy="p",
        policy_version=0,
        arm="gpt-4",
        features=HUGE,
        reward=1e302,
        components={"quality": 0.5},
        propensity=0.5,
        cohort="rl",
        decision_ts=1.7e9,
        reward_ts=1.7e9,
    )


def test_a_poison_reward_goes_to_the_dlq_and_the_rest_is_applied(fault_services, tmp_path):
    svc = fault_services
    svc.create_policy("p", ARMS, D)
    store = svc.store()
    store.apply("p", [Observation("seed", "gpt-4", HUGE, 1e302)])  # b[0] = 1e308 on gpt-4
    pairs = make_pairs(N - 1, policy="p", arms=ARMS, n_features=D, seed=21)
    expected = expected_counts(pairs)
    expected["gpt-4"] += 1  # the seed

    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    worker = WorkerProcess(settings, "w0", app_id=f"{svc.key_prefix}-stream", workdir=tmp_path)
    producer = raw_producer(svc.bootstrap)

    def total() -> float:
        return sum(s.n for s in store.read_state("p").arms.values())

    try:
        worker.start().wait_ready(120)
        half = len(pairs) // 2
        produce_pairs(producer, svc.topics, pairs[:half])
        producer.produce(svc.topics.rewards, key=b"poison", value=_poison().to_bytes())
        produce_pairs(producer, svc.topics, pairs[half:])
        assert producer.flush(60) == 0
        wait_for_progress(
            total, N, "the other rewards applied", activity=lambda: worker_activity(worker)
        )
        dlq = read_topic(svc.bootstrap, svc.topics.dlq, expect=1, timeout=60)
        retries = worker_counter(worker, "rlc_apply_retries_total")
        applied = worker_counter(worker, "rlc_applied_total")
        log = worker.log_tail(100_000)  # the whole log
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
        producer.purge()

    [record] = [DLQRecord.model_validate_json(m.value()) for m in dlq]
    assert (record.key, record.reason, record.source_topic) == (
        "poison",
        "out_of_range",
        svc.topics.rewards,
    )
    assert RewardEvent.model_validate_json(record.original) == _poison()
    state = store.read_state("p")
    assert {arm: s.n for arm, s in state.arms.items()} == {a: float(n) for a, n in expected.items()}
    assert applied == N - 1 and retries == 0
    assert "stream engine failed" not in log
