"""RLTracker: prometheus metrics per policy and arm, isolated per registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from policy_store import Settings
from producers import EventProducer, RLTracker


def _value(reg, metric, **labels):
    return reg.get_sample_value(metric, labels)


def test_decisions_rewards_and_metrics_per_policy_and_arm():
    reg = CollectorRegistry()
    t = RLTracker("routing", registry=reg)
    for v in ["llama", "llama", "gpt-4"]:
        t.log_decision("provider", v)
    t.log_decision("cohort", "rl")
    t.log_reward(0.8, arm="llama")
    t.log_reward(0.6, arm="llama")
    t.log_reward(0.3)
    t.log_metrics({"latency_ms": 120.0, "cost": 0.002, "label": "skip", "ok": True}, arm="llama")
    assert _value(reg, "rlc_decisions_total", policy="routing", kind="provider", value="llama") == 2
    assert _value(reg, "rlc_decisions_total", policy="routing", kind="cohort", value="rl") == 1
    assert _value(reg, "rlc_reward_count", policy="routing", arm="llama") == 2
    assert _value(reg, "rlc_reward_sum", policy="routing", arm="llama") == pytest.approx(1.4)
    assert _value(reg, "rlc_reward_last", policy="routing", arm="all") == 0.3
    assert _value(reg, "rlc_metric", policy="routing", arm="llama", name="latency_ms") == 120.0
    assert _value(reg, "rlc_metric", policy="routing", arm="llama", name="label") is None
    assert _value(reg, "rlc_metric", policy="routing", arm="llama", name="ok") is None


def test_two_trackers_share_a_registry_and_two_registries_stay_apart():
    reg1, reg2 = CollectorRegistry(), CollectorRegistry()
    a, b = RLTracker("a", registry=reg1), RLTracker("b", registry=reg1)
    c = RLTracker("a", registry=reg2)
    a.log_decision("provider", "x")
    b.log_decision("provider", "x")
    assert _value(reg1, "rlc_decisions_total", policy="a", kind="provider", value="x") == 1
    assert _value(reg1, "rlc_decisions_total", policy="b", kind="provider", value="x") == 1
    assert _value(reg2, "rlc_decisions_total", policy="a", kind="provider", value="x") is None
    c.log_reward(1.0)
    assert _value(reg1, "rlc_reward_count", policy="a", arm="all") is None


def test_non_finite_reward_is_refused():
    t = RLTracker("p", registry=CollectorRegistry())
    with pytest.raises(ValueError, match="finite"):
        t.log_reward(float("nan"))


def test_producer_counters_are_exposed_without_secrets():
    reg = CollectorRegistry()
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc",
        kafka_sasl_password="hunter2-secret",
    )
    p = EventProducer(settings)
    p.register(reg, name="proxy")
    p.dropped += 3  # as a full queue would
    text = generate_latest(reg).decode()
    assert 'rlc_producer_events_total{producer="proxy",result="dropped"} 3.0' in text
    assert "hunter2" not in repr(p.describe()) and p.describe()["sasl.password"] == "***"
    assert p.describe()["sasl.username"] == "svc"
    assert p.describe()["partitioner"] == "murmur2_random"
    assert p.describe()["enable.idempotence"] is True
    assert p.close(0) == 0


def test_llm_client_feeds_the_tracker():
    import asyncio

    from producers import LLMClient, ProviderSelector

    reg = CollectorRegistry()
    tracker = RLTracker("provider_selection", registry=reg)
    sel = ProviderSelector(seed=0)

    async def call_fn(provider, prompt, **kw):
        if provider == "llama":
            raise RuntimeError("down")
        return "ok"

    client = LLMClient(sel, call_fn, quality_fn=lambda p, q, r: 0.5, tracker=tracker)

    async def run():
        return [await client.call_detailed(f"q{i}") for i in range(9)]

    results = asyncio.run(run())
    chosen = [r.decision.provider for r in results]
    for arm in set(chosen):
        got = _value(
            reg, "rlc_decisions_total", policy="provider_selection", kind="provider", value=arm
        )
        assert got == chosen.count(arm)
    errors = _value(
        reg, "rlc_decisions_total", policy="provider_selection", kind="error", value="llama"
    )
    assert errors == chosen.count("llama") > 0
    assert (
        _value(reg, "rlc_metric", policy="provider_selection", arm="gpt-4", name="quality") == 0.5
    )
