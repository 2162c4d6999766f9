"""SafeProviderSelector without services: cohorts, kill switch, shadow, staleness, fallback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from policy_store import InMemoryPolicyStore, PolicyReader, make_config
from producers import FixedBaseline, LLMClient, SafeProviderSelector, cohort_position

ARMS = ["gpt-4", "claude-3", "llama"]


class RuleBaseline:
    """The proxy's existing logic: llama for speed, gpt-4 otherwise."""

    def select_provider(self, request):
        return "llama" if request.get("priority") == "speed" else "gpt-4"


@pytest.fixture(scope="module")
def positions():
    return np.array([cohort_position(f"user-{i}", "provider_selection") for i in range(100_000)])


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9])
def test_rollout_fraction_within_one_percent_over_100k_keys(positions, fraction):
    share = float((positions < fraction).mean())
    assert abs(share - fraction) <= 0.01


def test_cohorts_are_sticky_and_follow_the_fraction():
    sel = SafeProviderSelector(exploration_rate=0.3, baseline=RuleBaseline(), seed=0)
    first = {}
    for i in range(3000):
        first[f"u{i}"] = sel.select({"prompt": "hi", "user_id": f"u{i}"}).cohort
    for i in range(3000):  # same keys again, other request contents: same cohorts
        d = sel.select({"prompt": "other text", "priority": "speed"}, request_key=f"u{i}")
        assert d.cohort == first[f"u{i}"]
    share = sum(c == "rl" for c in first.values()) / len(first)
    assert abs(share - 0.3) < 0.03


def test_baseline_decisions_are_logged_with_learned_choice():
    sel = SafeProviderSelector(exploration_rate=0.0, baseline=RuleBaseline(), seed=0)
    d = sel.select({"prompt": "hi", "priority": "speed", "user_id": "u1"})
    assert (d.cohort, d.provider, d.propensity) == ("baseline", "llama", 1.0)
    assert d.learned_provider in ARMS and d.logged


def test_kill_switch_and_shadow_in_process():
    sel = SafeProviderSelector(exploration_rate=1.0, baseline=FixedBaseline("gpt-4"), seed=1)
    req = {"prompt": "hi", "user_id": "u1"}
    assert sel.select(req).cohort == "rl"
    sel.update_config(enabled=False)
    d = sel.select(req)
    assert (d.cohort, d.provider, d.learned_provider) == ("baseline", "gpt-4", None)
    sel.update_config(enabled=True, shadow=True)
    d = sel.select(req)
    assert (d.cohort, d.provider) == ("shadow", "gpt-4")
    assert d.learned_provider in ARMS


def test_stale_parameters_fall_back_to_the_baseline():
    now = [0.0]
    store = InMemoryPolicyStore()
    store.create(
        make_config(
            name="p", arms=ARMS, n_features=7, rollout_fraction=1.0, max_staleness_seconds=5.0
        )
    )
    reader = PolicyReader(store, "p", clock=lambda: now[0], start=False)
    reader.refresh()
    sel = SafeProviderSelector(baseline=FixedBaseline("claude-3"), reader=reader, seed=0)
    assert sel.select({"prompt": "x", "user_id": "a"}).cohort == "rl"
    now[0] = 6.0  # no successful refresh for 6 s > max_staleness_seconds
    d = sel.select({"prompt": "x", "user_id": "a"})
    assert (d.cohort, d.provider) == ("baseline", "claude-3")
    assert sel.metrics()["fallbacks"] == 1


def test_missing_policy_serves_the_baseline_unlogged():
    reader = PolicyReader(InMemoryPolicyStore(), "nope", start=False)
    reader.refresh()
    sel = SafeProviderSelector(baseline=RuleBaseline(), reader=reader, providers=ARMS)
    d = sel.select({"prompt": "x", "priority": "speed"})
    assert (d.provider, d.cohort, d.logged) == ("llama", "baseline", False)


def test_failing_baseline_fails_open():
    class Broken:
        def select_provider(self, request):
            raise RuntimeError("rule engine down")

    sel = SafeProviderSelector(exploration_rate=0.0, baseline=Broken(), providers=ARMS)
    d = sel.select({"prompt": "x", "user_id": "u"})
    assert d.provider == "gpt-4" and sel.baseline_errors == 1


def test_llm_client_fallback_charges_the_error_to_the_chosen_arm():
    """gpt-4 always fails; the fallback serves; gpt-4 is charged, never credited."""
    sel = SafeProviderSelector(exploration_rate=1.0, seed=3)

    async def call_fn(provider, prompt, **kw):
        await asyncio.sleep(0)
        if provider == "gpt-4":
            raise TimeoutError("provider timed out")
        return {"text": f"{provider} says hi"}

    client = LLMClient(sel, call_fn, cost_fn=lambda p, q, r: 0.1, quality_fn=lambda p, q, r: 1.0)

    async def run():
        return [
            await client.call_detailed(f"q{i}", request_key=f"u{i}", priority="speed")
            for i in range(40)
        ]

    results = asyncio.run(run())
    chosen = [r.decision.provider for r in results]
    assert "gpt-4" in chosen  # cold start tries every arm
    for r in results:
        if r.decision.provider == "gpt-4":
            assert (r.error, r.provider) == ("TimeoutError", r.fallback_provider)
            assert r.fallback_provider != "gpt-4"
            assert r.response == {"text": f"{r.fallback_provider} says hi"}
        else:
            assert r.error is None and r.provider == r.decision.provider
    snap = sel.reader.view.snapshot
    for arm in ARMS:  # one observation per decision, for the chosen arm only
        assert snap.n[snap.index[arm]] == chosen.count(arm)
    failure = sel.reader.config.reward.failure_reward
    x_sum = np.sum([r.decision.features for r in results if r.decision.provider == "gpt-4"], 0)
    np.testing.assert_allclose(snap.b[snap.index["gpt-4"]], failure * x_sum)
    assert client.report_errors == 0
