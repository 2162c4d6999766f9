"""The simulated providers and traffic: seeded, noisy, and a world where routing matters."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from stream_app.dev.simulated import (
    DEFAULT_PROFILES,
    FEATURE_NAMES,
    TASK_TYPES,
    ProviderError,
    RequestGenerator,
    SimulatedProviders,
    best_by_task,
    demo_reward_spec,
    expected_reward_table,
    request_features,
)


def _responses(seed: int, n: int = 50):
    world = SimulatedProviders(seed=seed)
    reqs = RequestGenerator(seed=seed).take(n)
    return [world.respond(p, r) for r in reqs for p in world.names]


def test_same_seed_same_world_and_different_seed_differs():
    assert _responses(3) == _responses(3)
    assert _responses(3) != _responses(4)


def test_different_providers_are_best_for_different_task_types():
    best = best_by_task(demo_reward_spec())
    assert set(best) == set(TASK_TYPES)
    assert len(set(best.values())) == 3, best
    assert best["code"] == "gpt-4"
    assert best["summarize"] == "claude-3"
    assert best["classify"] == "llama"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_routing_by_task_beats_static_rules_on_expected_reward(seed):
    """The honest reason to learn: the per-request oracle beats every single provider and the
    priority rule a proxy would use, by a margin far above the reward noise of a demo run."""
    spec = demo_reward_spec()
    world = SimulatedProviders(seed=seed)
    reqs = RequestGenerator(seed=seed).take(3000)

    def mean_reward(choose):
        return float(np.mean([world.expected_reward(choose(r), r, spec) for r in reqs]))

    oracle = mean_reward(lambda r: world.best(r, spec))
    static = {p: mean_reward(lambda r, p=p: p) for p in world.names}
    rule = mean_reward(lambda r: "llama" if r.priority in ("speed", "cost") else "gpt-4")
    assert oracle - static["gpt-4"] > 0.03
    assert oracle - rule > 0.03
    assert oracle - max(static.values()) > 0.01


def test_cost_is_tokens_times_price():
    prof = DEFAULT_PROFILES["gpt-4"]
    world = SimulatedProviders(seed=0)
    req = {"task_type": "chat", "prompt_tokens": 1000, "max_tokens": 500}
    resp = world.respond("gpt-4", req)
    assert resp.cost == pytest.approx(prof.price_in + resp.output_tokens / 1000 * prof.price_out)
    # the same answer length costs more with a longer prompt, and llama is far cheaper
    q, c_short, _ = world.expected("gpt-4", {**req, "prompt_tokens": 100})
    _, c_long, _ = world.expected("gpt-4", req)
    _, c_llama, _ = world.expected("llama", req)
    assert c_long > c_short > c_llama * 20


def test_latency_grows_with_answer_length_and_is_noisy():
    world = SimulatedProviders(seed=5)
    short = [world.respond("claude-3", {"task_type": "chat", "max_tokens": 20}) for _ in range(400)]
    long = [world.respond("claude-3", {"task_type": "chat", "max_tokens": 800}) for _ in range(400)]
    ls = np.array([r.latency_ms for r in short])
    ll = np.array([r.latency_ms for r in long])
    assert ll.mean() > 3 * ls.mean()
    assert ll.std() > 0.05 * ll.mean()  # noisy, not a constant
    prof = DEFAULT_PROFILES["claude-3"]
    assert ll.mean() == pytest.approx(prof.mean_latency_ms(800), rel=0.1)


@pytest.mark.parametrize("task", TASK_TYPES)
def test_quality_depends_on_task_type_around_the_profile_mean(task):
    world = SimulatedProviders(seed=11)
    for name, prof in DEFAULT_PROFILES.items():
        qs = np.array([world.respond(name, {"task_type": task}).quality for _ in range(1500)])
        assert qs.min() >= 0.0 and qs.max() <= 1.0
        assert qs.std() > 0.03
        # clipping at 1 pulls very high means down a little
        assert qs.mean() == pytest.approx(prof.mean_quality(task), abs=0.02)


def test_change_mid_run_makes_a_provider_worse_or_cheaper():
    world = SimulatedProviders(seed=0)
    before = world.expected("llama", {"task_type": "classify"})
    world.respond("llama", {"task_type": "classify"})
    world.change("llama", quality_delta=-0.3)
    after = world.expected("llama", {"task_type": "classify"})
    assert after[0] == pytest.approx(before[0] - 0.3)
    assert world.changes[0][0] == 1 and world.changes[0][1] == "llama"
    c0 = world.expected("claude-3", {"task_type": "code"})[1]
    world.change("claude-3", price_factor=0.5)
    assert world.expected("claude-3", {"task_type": "code"})[1] == pytest.approx(c0 / 2)
    # only the named task types move when a mapping is given
    world.change("gpt-4", quality_delta={"code": -0.1})
    assert world.profile("gpt-4").mean_quality("chat") == DEFAULT_PROFILES["gpt-4"].quality["chat"]
    with pytest.raises(ValueError, match="known"):
        world.change("nope", quality_delta=-0.1)


def test_errors_follow_the_error_rate():
    world = SimulatedProviders(seed=2)
    world.change("llama", error_rate=0.3)
    failures = 0
    for _ in range(2000):
        try:
            world.respond("llama", {"task_type": "chat"})
        except ProviderError as exc:
            assert exc.provider == "llama"
            failures += 1
    assert 0.25 < failures / 2000 < 0.35


def test_async_call_takes_request_fields_or_guesses_from_the_prompt():
    world = SimulatedProviders(seed=0)
    resp = asyncio.run(
        world.call("gpt-4", "hello", task_type="summarize", prompt_tokens=2000, max_tokens=100)
    )
    assert resp.task_type == "summarize" and resp.prompt_tokens == 2000
    guessed = asyncio.run(world.call("llama", "Write a Python function that adds numbers."))
    assert guessed.task_type == "code"
    with pytest.raises(ValueError, match="task_type"):
        asyncio.run(world.call("llama", "x", task_type="poetry"))


def test_request_generator_mix_users_and_lengths():
    gen = RequestGenerator(seed=7, n_users=50)
    reqs = gen.take(4000)
    counts = Counter(r.task_type for r in reqs)
    assert counts["chat"] / 4000 == pytest.approx(0.35, abs=0.03)
    assert {r.user_id for r in reqs} <= {f"user-{i}" for i in range(50)}
    assert len({r.request_id for r in reqs}) == 4000
    summ = np.median([r.prompt_tokens for r in reqs if r.task_type == "summarize"])
    chat = np.median([r.prompt_tokens for r in reqs if r.task_type == "chat"])
    assert summ > 5 * chat
    d = reqs[0].as_dict()
    assert {"prompt", "priority", "user_id", "task_type"} <= set(d)
    with pytest.raises(ValueError, match="unknown task types"):
        RequestGenerator(mix={"poetry": 1.0})


def test_request_features_one_hot_and_length():
    req = RequestGenerator(seed=1).next()
    x = request_features(req)
    assert len(x) == len(FEATURE_NAMES)
    assert x[0] == 1.0 and sum(x[1 : 1 + len(TASK_TYPES)]) == 1.0
    assert request_features(req.as_dict()) == x
    assert request_features({"prompt": "a" * 40000, "task_type": "chat"})[5] == 4.0


def test_reward_table_is_consistent_with_the_spec():
    spec = demo_reward_spec()
    table = expected_reward_table(spec)
    for row in table.values():
        for v in row.values():
            assert 0.0 <= v <= 1.0


def test_clock_advances_by_the_simulated_latency_of_each_call():
    world = SimulatedProviders(seed=0)
    t0 = world.clock()
    resp = asyncio.run(world.call("gpt-4", "hi", task_type="chat"))
    assert world.clock() - t0 == pytest.approx(resp.latency_ms / 1000.0)
