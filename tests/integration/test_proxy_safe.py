"""SafeProviderSelector and LLMClient against real Redis and the embedded broker."""

from __future__ import annotations

import asyncio
import time

import pytest

from policy_store import make_config
from producers import (
    DecisionEvent,
    FixedBaseline,
    LLMClient,
    OutcomeEvent,
    SafeProviderSelector,
    parse_event,
)
from tests.integration.test_proxy_events import _consume

pytestmark = pytest.mark.integration

ARMS = ["gpt-4", "claude-3", "llama"]
KEYS = [f"user-{i}" for i in range(200)]


def _rl_share(selector) -> float:
    return sum(selector.select({"prompt": "q"}, request_key=k).cohort == "rl" for k in KEYS) / 200


def _until(predicate, within: float) -> float | None:
    """Seconds until ``predicate()`` held, or None if it did not within ``within`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def test_kill_switch_and_rollout_changes_reach_a_running_selector_within_1s(settings, redis_store):
    redis_store.create(make_config(name="safe1", arms=ARMS, n_features=7, rollout_fraction=1.0))
    selector = SafeProviderSelector.connect(
        "safe1", settings, baseline=FixedBaseline("claude-3"), seed=0
    )
    try:
        assert selector.reader.wait_for_version(0, timeout=5)
        assert _rl_share(selector) == 1.0
        redis_store.update_config("safe1", enabled=False)  # kill switch
        assert _until(lambda: _rl_share(selector) == 0.0, within=1.0) is not None
        d = selector.select({"prompt": "q"}, request_key="user-1")
        assert (d.cohort, d.provider, d.logged) == ("baseline", "claude-3", True)

        redis_store.update_config("safe1", enabled=True, rollout_fraction=0.25)
        assert _until(lambda: 0.1 < _rl_share(selector) < 0.4, within=1.0) is not None
        shares = {k: selector.select({"prompt": "x"}, request_key=k).cohort for k in KEYS}
        again = {k: selector.select({"prompt": "y"}, request_key=k).cohort for k in KEYS}
        assert shares == again  # sticky
    finally:
        selector.close(timeout=5)


def test_shadow_mode_logs_both_choices(services, settings, topics, redis_store, unique):
    redis_store.create(
        make_config(name="safe2", arms=ARMS, n_features=7, shadow=True, rollout_fraction=1.0)
    )
    selector = SafeProviderSelector.connect(
        "safe2", settings, baseline=FixedBaseline("gpt-4"), seed=0
    )
    try:
        assert selector.reader.wait_for_version(0, timeout=5)
        served = [selector.select({"prompt": f"q{i}"}, request_key=f"u{i}") for i in range(30)]
    finally:
        selector.close(timeout=10)
    assert {d.provider for d in served} == {"gpt-4"}
    events = [
        parse_event(m.value()) for m in _consume(services.bootstrap, topics.decisions, 30, unique)
    ]
    assert len(events) == 30
    assert all(isinstance(e, DecisionEvent) for e in events)
    assert {e.cohort for e in events} == {"shadow"}
    assert {e.arm for e in events} == {"gpt-4"} and all(e.propensity == 1.0 for e in events)
    learned = [e.learned_arm for e in events]
    assert None not in learned and len(set(learned)) > 1  # cold start spreads the learned arm
    assert all(e.learned_propensity is not None for e in events)


def test_fallback_outcome_charges_the_chosen_provider(
    services, settings, topics, redis_store, unique
):
    redis_store.create(make_config(name="safe3", arms=ARMS, n_features=7, rollout_fraction=1.0))
    selector = SafeProviderSelector.connect("safe3", settings, seed=4)

    async def call_fn(provider, prompt, **kw):
        if provider == "gpt-4":
            raise ConnectionError("gpt-4 is down")
        return f"{provider}: ok"

    client = LLMClient(
        selector, call_fn, cost_fn=lambda p, q, r: 0.2, quality_fn=lambda p, q, r: 0.9
    )

    async def run():
        return [await client.call_detailed(f"q{i}", request_key=f"u{i}") for i in range(30)]

    try:
        assert selector.reader.wait_for_version(0, timeout=5)
        results = asyncio.run(run())
    finally:
        selector.close(timeout=10)
    failed = {r.decision.decision_id: r for r in results if r.decision.provider == "gpt-4"}
    assert failed, "cold start should have chosen gpt-4 at least once"
    outcomes = [
        parse_event(m.value()) for m in _consume(services.bootstrap, topics.outcomes, 30, unique)
    ]
    assert len(outcomes) == 30 and all(isinstance(o, OutcomeEvent) for o in outcomes)
    for o in outcomes:
        if o.decision_id in failed:
            r = failed[o.decision_id]
            assert (o.arm, o.error, o.final) == ("gpt-4", "ConnectionError", True)
            assert o.fallback_arm == r.fallback_provider != "gpt-4"
            assert r.response == f"{r.fallback_provider}: ok"
            # nothing of the fallback's success is reported for the chosen arm
            assert (o.quality, o.cost, o.latency) == (None, None, None)
        else:
            assert o.error is None and o.fallback_arm is None
            assert (o.quality, o.cost) == (0.9, 0.2) and o.latency is not None
