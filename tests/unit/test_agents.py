"""The Faust agents with ``agent.test_context()``: no broker, no Redis.

The app's output topics are swapped for Faust in-memory channels and the policy
store is the in-memory store, so the agents run exactly as in a worker minus Kafka.
"""

from __future__ import annotations

import asyncio

import pytest

from policy_store import InMemoryPolicyStore, Settings, make_config
from producers import DecisionEvent, DLQRecord, OutcomeEvent, RewardEvent
from stream_app import create_app

ARMS = ("a", "b")


def _decision(i: str, arm: str = "a", **kw) -> DecisionEvent:
    fields = dict(
        decision_id=i,
        policy="p",
        policy_version=0,
        timestamp=1.0,
        arms=ARMS,
        arm=arm,
        propensity=0.5,
        features=(1.0, 0.0),
    )
    return DecisionEvent(**{**fields, **kw})


@pytest.fixture
def stream(tmp_path):
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=ARMS, n_features=2))
    sa = create_app(
        Settings(topic_prefix="unit."),
        app_id="unit-agents",
        store=store,
        datadir=str(tmp_path),
        web_enabled=False,
        engine="agents",
    )
    sa.app.finalize()
    rewards, dlq = sa.app.channel(), sa.app.channel()
    sa.agents.joiner.rewards_topic, sa.agents.joiner.dlq_topic = rewards, dlq
    # iterators subscribe to the channels, so what the agents send is kept for us
    return sa, store, rewards.__aiter__(), dlq.__aiter__()


async def _drain(channel) -> list[bytes]:
    out = []
    while True:
        try:
            ev = await asyncio.wait_for(channel.get(), timeout=0.05)
        except TimeoutError:
            return out
        out.append(ev.value if hasattr(ev, "value") else ev)


async def test_join_agent_emits_one_reward_and_sends_bad_input_to_the_dlq(stream):
    sa, _store, rewards, dlq = stream
    async with sa.agents.join.test_context() as agent:
        await agent.put(_decision("d1").to_bytes(), key=b"d1")
        await agent.put(
            OutcomeEvent(
                decision_id="d1", timestamp=2.0, quality=1.0, cost=0.0, latency=0.0
            ).to_bytes(),
            key=b"d1",
        )
        await agent.put(_decision("d1").to_bytes(), key=b"d1")  # duplicate: re-sent reward
        await agent.put(b"{broken", key=b"x")
        await agent.put(_decision("d2", features=(1.0,)).to_bytes(), key=b"d2")
        out = [RewardEvent.model_validate_json(v) for v in await _drain(rewards)]
        bad = [DLQRecord.model_validate_json(v) for v in await _drain(dlq)]
    assert {r.decision_id for r in out} == {"d1"} and out[0].reward == pytest.approx(1.0)
    assert [r.reason for r in bad] == ["bad_json", "feature_length"]
    assert bad[0].original == b"{broken"
    assert sa.agents.table["d1"]["status"] == "rewarded"


async def test_updater_agent_applies_a_batch_once(stream):
    sa, store, _rewards, dlq = stream
    reward = RewardEvent(
        decision_id="d9",
        policy="p",
        policy_version=0,
        arm="b",
        features=(0.0, 1.0),
        reward=0.7,
        components={"quality": 0.7},
        propensity=0.5,
        cohort="baseline",
        decision_ts=1.0,
        reward_ts=2.0,
    )
    async with sa.agents.updater.test_context() as agent:
        await agent.put(reward.to_bytes(), key=b"d9")
        await agent.put(reward.to_bytes(), key=b"d9")  # a replay
        await agent.put(b'{"type": "reward"}', key=b"zz")
        for _ in range(100):
            if store.read_state("p").arms and sa.metrics.dlq.labels("schema")._value.get():
                break
            await asyncio.sleep(0.02)
        bad = [DLQRecord.model_validate_json(v) for v in await _drain(dlq)]
    state = store.read_state("p")
    assert state.arms["b"].n == 1.0  # baseline cohort data updates the policy, once
    assert state.arms["b"].b.tolist() == pytest.approx([0.0, 0.7])
    assert [r.reason for r in bad] == ["schema"]


class _FlakyStore(InMemoryPolicyStore):
    """A real in-memory store that is unreachable for its first ``down`` applies."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down
        self.attempts = 0

    def apply(self, name, observations):
        self.attempts += 1
        if self.attempts <= self.down:
            from policy_store import StoreUnavailableError

            raise StoreUnavailableError("Redis unreachable (simulated outage)")
        return super().apply(name, observations)


async def test_updater_waits_out_a_store_outage_and_applies_everything_once():
    from stream_app import Updater

    store = _FlakyStore(down=3)
    store.create(make_config(name="p", arms=ARMS, n_features=2))
    rewards = [
        RewardEvent(
            decision_id=f"d{i}",
            policy="p",
            policy_version=0,
            arm="a",
            features=(1.0, 0.0),
            reward=1.0,
            components={},
            propensity=1.0,
            cohort="rl",
            decision_ts=1.0,
            reward_ts=2.0,
        )
        for i in range(5)
    ]
    updater = Updater(store)
    result = await updater.apply_until_done(rewards, initial_backoff=0.001, max_backoff=0.004)
    assert store.attempts == 4 and result.applied == 5
    assert updater.metrics.apply_retries._value.get() == 3
    again = await updater.apply_until_done(rewards)  # a replay after a crash
    assert again.applied == 0 and again.duplicates == 5
    assert store.read_state("p").arms["a"].n == 5.0
