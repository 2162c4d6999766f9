"""1,000 concurrent async requests through ``LLMClient``: no errors, no lost outcome events.

The providers are simulated (the only mock the project allows); one of them fails
10% of its calls so the fallback path runs under load too. Every decision and every
outcome is counted on the real topics afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest
from _traffic import read_topic

from policy_store import Settings
from producers import DEFAULT_FEATURE_NAMES, EventProducer, LLMClient, ProviderSelector

pytestmark = pytest.mark.faults

N_REQUESTS = 1_000
ARMS = ["gpt-4", "claude-3", "llama"]


class FlakyProviders:
    """Async simulated providers: a few ms of latency each; llama fails 10% of its calls."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calls: Counter = Counter()
        self.failures = 0

    async def __call__(self, provider: str, prompt: str, **kwargs) -> str:
        self.calls[provider] += 1
        await asyncio.sleep(self.rng.uniform(0.001, 0.02))
        if provider == "llama" and self.rng.random() < 0.1:
            self.failures += 1
            raise TimeoutError("simulated provider timeout")
        return f"{provider}: {prompt[:10]}"


def test_thousand_concurrent_calls_lose_no_outcome(fault_services):
    svc = fault_services
    svc.create_policy("p", ARMS, len(DEFAULT_FEATURE_NAMES), rollout_fraction=1.0)
    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    producer = EventProducer(settings)
    selector = ProviderSelector.connect("p", settings, seed=3, producer=producer)
    providers = FlakyProviders(seed=3)
    client = LLMClient(
        selector,
        providers,
        cost_fn=lambda provider, prompt, response: 0.1,
        quality_fn=lambda provider, prompt, response: 0.8,
    )

    async def run() -> list:
        rng = random.Random(4)
        calls = [
            client.call_detailed(
                "x" * rng.randint(1, 3000),
                request_key=f"user-{i % 97}",
                priority=rng.choice(["speed", "quality", "cost"]),
            )
            for i in range(N_REQUESTS)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(run())
        left = producer.flush(30)
        metrics = selector.metrics()
    finally:
        selector.close()
        producer.close(5)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert left == 0
    assert metrics["producer_dropped"] == 0 and metrics["producer_delivery_failed"] == 0
    assert metrics["producer_delivered"] == 2 * N_REQUESTS
    assert client.report_errors == 0
    decision_ids = {r.decision.decision_id for r in results}
    assert len(decision_ids) == N_REQUESTS
    assert all(r.decision.logged for r in results)

    decisions = read_topic(svc.bootstrap, svc.topics.decisions, expect=N_REQUESTS, timeout=60)
    outcomes = read_topic(svc.bootstrap, svc.topics.outcomes, expect=N_REQUESTS, timeout=60)
    assert sorted(m.key().decode() for m in decisions) == sorted(decision_ids)
    assert sorted(m.key().decode() for m in outcomes) == sorted(decision_ids)
    parsed = [json.loads(m.value()) for m in outcomes]
    assert all(o["final"] for o in parsed)
    failed = [o for o in parsed if "error" in o]
    assert len(failed) == providers.failures  # each failure charged to the chosen arm once
    assert all(o["arm"] == "llama" and o["fallback_arm"] != "llama" for o in failed)
    print(
        f"{N_REQUESTS} concurrent calls: {len(decisions)} decisions and {len(outcomes)} outcomes "
        f"on the topics, {providers.failures} provider failures served by a fallback"
    )
