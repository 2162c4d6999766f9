"""Redis restarted without persistence in the middle of 50,000 rewards, then rebuilt.

The policy is created through the CLI (so its config is recorded: the worker relays it
to the compacted policies topic). Mid-stream Redis is stopped and started empty. The
worker must not dead-letter the policy's traffic: it keeps joining, holds the policy's
rewards uncommitted and says so in ``/ready``. ``rl-commons rebuild p`` then restores
the config and the learned state from Kafka; the worker resumes by itself and applies
what waited. Afterwards every arm's ``n`` equals the number of distinct rewarded
decisions and θ equals the θ of every reward applied once, computed apart from the
loop (an in-memory store fed the rewards topic), to 1e-9. No forgetting: the sums are
exact (docs/operations.md, Rebuild).

The size is ``RL_COMMONS_FAULT_REWARDS`` (default 50,000; set it lower for a quick run).

A second, smaller test wipes Redis while no worker runs and then starts one: it never
saw the policy in Redis, but the policies topic records it, so it holds the policy's
rewards instead of dead-lettering them as ``unknown_policy``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _traffic import (
    expected_counts,
    make_pairs,
    produce_pairs,
    raw_producer,
    read_topic,
    wait_for_progress,
    wait_until,
    worker_activity,
    worker_counter,
)
from _worker_proc import WorkerProcess

from policy_store import (
    InMemoryPolicyStore,
    PolicyConfig,
    Settings,
    build_snapshot,
    make_algorithm,
)
from producers import RewardEvent
from stream_app import Updater, read_policy_records
from stream_app.ops.cli import main

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

N_DECISIONS = int(os.environ.get("RL_COMMONS_FAULT_REWARDS", "50000"))
ARMS = ["gpt-4", "claude-3", "llama", "mistral"]
D = 4


def _theta(store, config: PolicyConfig) -> dict[str, np.ndarray]:
    state = store.read_state("p")
    algo = make_algorithm(config.algorithm)
    snap = build_snapshot(algo, config, state)
    return {arm: snap.theta[snap.index[arm]] for arm in config.arms}


def _reference(settings: Settings, svc, n: int, config: PolicyConfig):
    """Every reward of the topic applied once (dedupe by id) to an in-memory store through
    the worker's update rule: the state that was lost plus what came after."""
    msgs = read_topic(svc.bootstrap, svc.topics.rewards, expect=n, timeout=120)
    rewards = {}
    for m in msgs:
        r = RewardEvent.model_validate_json(m.value())
        rewards.setdefault(r.decision_id, r)
    ref = InMemoryPolicyStore()
    ref.create(config)
    Updater(ref).apply(list(rewards.values()))
    return ref, len(rewards)


def _setup(svc) -> tuple[Settings, list[str], list[str]]:
    """Settings, the CLI's Redis and Kafka options, and policy ``p`` created by the CLI."""
    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    cli = ["--redis-url", svc.redis_url, "--key-prefix", svc.key_prefix]
    kafka = ["--kafka-bootstrap", svc.bootstrap, "--topic-prefix", svc.topics.prefix]
    assert (
        main(["policy", "create", "p", "--arms", ",".join(ARMS), "--features", str(D), *cli]) == 0
    )
    return settings, cli, kafka


def _reason(worker) -> str:
    try:
        return json.loads(worker.get("/ready")[1]).get("reason") or ""
    except OSError:
        return ""


def test_rebuild_after_redis_lost_its_data_is_exact(fault_services, tmp_path, capsys):
    svc = fault_services
    settings, cli, kafka = _setup(svc)
    config = svc.store().get_config("p")
    pairs = make_pairs(N_DECISIONS, policy="p", arms=ARMS, n_features=D, seed=13)
    expected = expected_counts(pairs)

    def applied() -> float:
        try:
            return sum(s.n for s in svc.store().read_state("p").arms.values())
        except Exception:  # Redis restarting, or the policy not there
            return -1.0

    worker = WorkerProcess(settings, "w0", app_id=f"{svc.key_prefix}-stream", workdir=tmp_path)
    producer = raw_producer(svc.bootstrap)
    out = err = ""
    try:
        worker.start().wait_ready(120)
        activity = lambda: worker_activity(worker)  # noqa: E731
        wait_until(lambda: "p" in read_policy_records(settings, 5), 60, "the config's record")
        half = N_DECISIONS // 2
        produce_pairs(producer, svc.topics, pairs[:half])
        producer.flush(60)
        wait_for_progress(applied, 0.4 * N_DECISIONS, "rewards before the wipe", activity=activity)
        before = applied()
        svc.wipe_redis()  # mid-stream: some of the first half may still be on its way
        produce_pairs(producer, svc.topics, pairs[half:])
        producer.flush(60)

        # The worker holds the policy's rewards (not the DLQ) and says why.
        wait_for_progress(
            lambda: worker_counter(worker, "rlc_rewards_total"),
            N_DECISIONS,
            "rewards joined after the wipe",
            activity=activity,
        )

        wait_until(
            lambda: "rl-commons rebuild p" in _reason(worker), 60, "/ready to name the held policy"
        )
        assert worker_counter(worker, "rlc_dlq_total") <= 0
        assert worker.proc.poll() is None

        capsys.readouterr()
        assert main(["rebuild", "p", *kafka, *cli]) == 0
        out, err = capsys.readouterr()
        assert "rebuilt policy 'p'" in out and "rewards read" in err
        wait_for_progress(applied, N_DECISIONS, "rewards after the rebuild", activity=activity)
        wait_until(worker.ready, 60, "the worker to be ready again")
        store = svc.store()
        final = {arm: s.n for arm, s in store.read_state("p").arms.items()}
        ref, distinct = _reference(settings, svc, N_DECISIONS, config)
        theta, ref_theta = _theta(store, config), _theta(ref, config)
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
    assert distinct == N_DECISIONS
    assert final == {arm: float(n) for arm, n in expected.items()}
    for arm in ARMS:
        np.testing.assert_allclose(theta[arm], ref_theta[arm], rtol=0, atol=1e-9)
    print(
        f"\nRedis wiped after {before:.0f} of {N_DECISIONS} rewards applied; rebuild: "
        f"{err.strip().splitlines()[-1] if err.strip() else ''}; n per arm exact {final}"
    )


def test_a_worker_started_after_the_wipe_holds_the_recorded_policy(fault_services, tmp_path):
    svc = fault_services
    settings, cli, kafka = _setup(svc)
    pairs = make_pairs(2000, policy="p", arms=ARMS, n_features=D, seed=14)
    worker = WorkerProcess(settings, "w0", app_id=f"{svc.key_prefix}-stream", workdir=tmp_path)
    producer = raw_producer(svc.bootstrap)
    try:
        worker.start().wait_ready(120)  # relays the creation to the policies topic
        wait_until(lambda: "p" in read_policy_records(settings, 5), 60, "the config's record")
    finally:
        worker.stop()
    svc.wipe_redis()  # no worker runs: none ever saw the policy go
    worker = WorkerProcess(settings, "w1", app_id=f"{svc.key_prefix}-stream", workdir=tmp_path)
    try:
        worker.start()
        produce_pairs(producer, svc.topics, pairs)
        producer.flush(60)
        wait_until(
            lambda: "rl-commons rebuild p" in _reason(worker), 120, "/ready to name the policy"
        )
        wait_for_progress(
            lambda: worker_counter(worker, "rlc_rewards_total"),
            len(pairs),
            "rewards joined after the wipe",
            activity=lambda: worker_activity(worker),
        )
        assert worker_counter(worker, "rlc_dlq_total") <= 0
        assert main(["rebuild", "p", "--quiet", *kafka, *cli]) == 0
        n = lambda: sum(s.n for s in svc.store().read_state("p").arms.values())  # noqa: E731
        wait_until(lambda: n() == len(pairs), 120, "every reward applied once")
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
