"""The stream app end to end: real embedded broker, real Redis, worker subprocesses.

One worker serves the whole module (own topics, group and key prefix); each test uses its
own policy and decision ids so tests do not see each other's data.
"""

from __future__ import annotations

import json
import uuid

import pytest

from policy_store import PolicyKeys, PolicyReader, RedisPolicyStore, Settings
from producers import DLQRecord, RewardEvent, Topics, create_topics
from stream_app.aggregates import read_freshness, read_health
from tests._worker_proc import WorkerProcess
from tests.integration._stream_helpers import (
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


class Env:
    def __init__(self, services, tmp_path_factory):
        u = uuid.uuid4().hex[:8]
        self.topics = Topics(prefix=f"s{u}.")
        create_topics(Settings(kafka_bootstrap=services.bootstrap), self.topics, partitions=4)
        self.settings = Settings(
            kafka_bootstrap=services.bootstrap,
            redis_url=services.redis_url,
            key_prefix=f"s{u}",
            topic_prefix=self.topics.prefix,
        )
        self.store = RedisPolicyStore.from_url(services.redis_url, prefix=f"s{u}")
        self.bootstrap = services.bootstrap
        self.sender = Sender(services.bootstrap, self.topics)
        self.worker = WorkerProcess(
            self.settings,
            "w1",
            app_id=f"g{u}",
            workdir=tmp_path_factory.mktemp("stream"),
            args=["--sweep-interval", "0.2", "--default-window", "2"],
        )

    def policy(self, **reward) -> str:
        name = f"p{uuid.uuid4().hex[:8]}"
        make_policy(self.store, name, **reward)
        return name

    def health(self, policy: str) -> dict[str, int]:
        return read_health(self.store.client, PolicyKeys(self.store.prefix, policy))

    def n(self, policy: str) -> dict[str, float]:
        return arm_counts(self.store, policy)

    def wait_n(self, policy: str, expected: dict[str, float], timeout: float = 30.0) -> None:
        try:
            wait_for(lambda: self.n(policy) == expected, timeout, f"n == {expected}")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; n={self.n(policy)} health={self.health(policy)}\n"
                f"{self.worker.log_tail(15)}"
            ) from None

    def dlq(self, keys: set[bytes], expect: int) -> dict[bytes, list[DLQRecord]]:
        msgs = read_topic(self.bootstrap, self.topics.dlq)
        out: dict[bytes, list[DLQRecord]] = {}
        for m in msgs:
            if m.key() in keys:
                out.setdefault(m.key(), []).append(DLQRecord.model_validate_json(m.value()))
        return out

    def rewards(self, policy: str) -> list[RewardEvent]:
        msgs = read_topic(self.bootstrap, self.topics.rewards)
        evs = [RewardEvent.model_validate_json(m.value()) for m in msgs]
        return [r for r in evs if r.policy == policy]


@pytest.fixture(scope="module")
def env(services, tmp_path_factory):
    """One worker for the module."""
    e = Env(services, tmp_path_factory)
    e.worker.start()
    try:
        e.worker.wait_ready()
        yield e
    finally:
        e.worker.stop()
        e.store.client.close()
        e.sender = None  # drop the producer before the broker stops


def test_decision_then_outcome_changes_parameters_seen_by_reader(env):
    p = env.policy()
    with PolicyReader(env.store, p, poll_interval=0.05) as reader:
        v0 = reader.version
        env.sender.send_all([decision("a1", arm="claude-3", policy=p), outcome("a1", **FULL)])
        assert reader.wait_for_version(v0 + 1, timeout=30), env.worker.log_tail()
        theta = reader.view.snapshot  # parameters moved away from the prior
        assert theta.version == v0 + 1
    assert env.n(p) == {"claude-3": 1.0}
    h = wait_for(lambda: env.health(p).get("joined") and env.health(p), 10, "health counters")
    assert h["events_in"] == 2 and h["joined"] == 1 and h["rewards"] == 1 and h["applied"] == 1
    fresh = read_freshness(env.store.client, PolicyKeys(env.store.prefix, p))
    assert {"last_apply_ms", "last_apply_latency_ms", "last_lag_ms"} <= set(fresh)
    metrics = env.worker.metrics()
    assert "rlc_applied_total" in metrics and 'rlc_events_in_total{topic="decisions"}' in metrics


def test_outcome_before_decision(env):
    p = env.policy()
    env.sender.send_all([outcome("b1", **FULL)])
    env.sender.send_all([decision("b1", arm="llama", policy=p)])
    env.wait_n(p, {"llama": 1.0})
    (r,) = env.rewards(p)
    assert r.decision_id == "d" + "b1" and r.reason == "complete"


def test_partial_outcomes_are_merged_into_one_reward(env):
    p = env.policy(cost_cap=0.02, latency_cap_ms=2000)
    env.sender.send_all([decision("c1", arm="gpt-4", policy=p), outcome("c1", cost=0.01)])
    env.sender.send_all([outcome("c1", latency=500.0), outcome("c1", quality=1.0, final=True)])
    env.wait_n(p, {"gpt-4": 1.0})
    (r,) = env.rewards(p)
    assert r.components.defaulted == ()
    assert r.components.cost == pytest.approx(0.5) and r.components.latency == pytest.approx(0.25)
    assert r.reward == pytest.approx(0.5 * 1.0 + 0.3 * 0.5 + 0.2 * 0.75)


def test_window_expiry_rewards_partial_and_expires_unmatched(env):
    p = env.policy(window_seconds=1.0)
    q = env.policy(window_seconds=1.0, reward_on_expiry=0.05)
    env.sender.send_all(
        [
            decision("e1", arm="gpt-4", policy=p),  # partial outcome -> window reward
            outcome("e1", quality=0.8),
            decision("e2", arm="llama", policy=p),  # nothing -> expired, no update
            decision("e3", arm="claude-3", policy=q),  # nothing -> expired, reward 0.05
        ]
    )
    env.wait_n(p, {"gpt-4": 1.0})
    env.wait_n(q, {"claude-3": 1.0})
    wait_for(lambda: env.health(p).get("expired") == 1, 10, "expired counter")
    (r,) = env.rewards(p)
    assert r.reason == "window" and set(r.components.defaulted) == {"cost", "latency"}
    (rq,) = env.rewards(q)
    assert rq.reason == "expired" and rq.reward == pytest.approx(0.05)
    assert env.health(p)["missing:cost"] == 1
    # an outcome for the expired decision is late: counted and sent to the DLQ
    env.sender.send_all([outcome("e2", **FULL)])
    got = wait_for(lambda: env.dlq({b"de2"}, 1), 20, "late DLQ record")
    assert [d.reason for d in got[b"de2"]] == ["late"]
    assert env.n(p) == {"gpt-4": 1.0}
    wait_for(lambda: env.health(p).get("late") == 1, 10, "late counter")


def test_duplicates_are_ignored_and_counted(env):
    p = env.policy()
    d, o = decision("f1", arm="gpt-4", policy=p), outcome("f1", **FULL)
    env.sender.send_all([d, d, o, o, d])
    d2 = decision("f2", arm="llama", policy=p)
    env.sender.send_all([d2, outcome("f2", cost=0.2), outcome("f2", cost=0.2)])
    env.sender.send_all([outcome("f2", quality=0.1, latency=0.3)])
    env.wait_n(p, {"gpt-4": 1.0, "llama": 1.0})
    wait_for(lambda: env.health(p).get("duplicates", 0) >= 4, 10, "duplicate counters")
    assert env.n(p) == {"gpt-4": 1.0, "llama": 1.0}


def test_every_kind_of_bad_input_goes_to_the_dlq(env):
    p = env.policy()
    good = decision("g0", policy=p)
    cases = {
        b"g-json": (env.topics.decisions, b"{not json"),
        b"g-schema": (env.topics.decisions, json.dumps({"type": "decision"}).encode()),
        b"g-nan": (
            env.topics.outcomes,
            b'{"type":"outcome","decision_id":"g-nan","timestamp":1.0,"cost":NaN}',
        ),
        b"dg-len": (env.topics.decisions, decision("g-len", features=(1.0,), policy=p)),
        b"dg-pol": (env.topics.decisions, decision("g-pol", policy="no-such-policy")),
        b"dg-arm": (
            env.topics.decisions,
            decision("g-arm", arms=("gpt-4", "mystery"), arm="mystery", policy=p),
        ),
        b"g-key": (env.topics.decisions, good),  # keyed by something else than decision_id
        b"g-big": (env.topics.outcomes, b'{"x": "' + b"a" * 300_000 + b'"}'),
    }
    expected = {
        b"g-json": "bad_json",
        b"g-schema": "schema",
        b"g-nan": "non_finite",
        b"dg-len": "feature_length",
        b"dg-pol": "unknown_policy",
        b"dg-arm": "unknown_arm",
        b"g-key": "schema",
        b"g-big": "too_large",
    }
    for key, (topic, value) in cases.items():
        if not isinstance(value, bytes):
            value = value.to_bytes()
        env.sender.raw(topic, value, key)
    env.sender.flush()

    def all_eight():
        got = env.dlq(set(cases), 8)
        return got if len(got) == 8 else None

    got = wait_for(all_eight, 30, "DLQ")
    assert {k: [d.reason for d in v] for k, v in got.items()} == {
        k: [r] for k, r in expected.items()
    }
    rec = got[b"g-json"][0]
    assert rec.original == b"{not json" and rec.source_topic == env.topics.decisions
    assert rec.offset is not None and rec.partition is not None
    # the worker kept running: a good pair still updates the policy
    env.sender.send_all([decision("g1", arm="llama", policy=p), outcome("g1", **FULL)])
    env.wait_n(p, {"llama": 1.0})
    metrics = env.worker.metrics()
    for reason in set(expected.values()):
        assert f'rlc_dlq_total{{reason="{reason}"}}' in metrics


def test_conflicting_outcome_part_goes_to_the_dlq(env):
    p = env.policy()
    env.sender.send_all([decision("h1", policy=p), outcome("h1", cost=0.1)])
    env.sender.send_all([outcome("h1", cost=0.9), outcome("h1", quality=0.5, latency=0.5)])
    env.wait_n(p, {"gpt-4": 1.0})
    got = wait_for(lambda: env.dlq({b"dh1"}, 1), 20, "conflict DLQ record")
    assert [d.reason for d in got[b"dh1"]] == ["conflict"]
    (r,) = env.rewards(p)
    assert r.components.cost == pytest.approx(0.1)
