"""LiteLLM's Router with the rl-commons plugin, end to end: mock deployments (no network),
the embedded broker, one ``rl-commons worker`` subprocess and Redis.

* a quality posted to ``POST /v1/feedback`` after the response closes the reward at once
  (the policy's window is 10 minutes; the reward is emitted within 1 s of the POST);
* over 2,000 completions the learned policy routes short chat to the cheap deployment
  and code to the strong one, from outcomes LiteLLM reports in dollars and milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
litellm = pytest.importorskip("litellm", reason="the optional extra rl-commons[litellm]")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from policy_store import RewardSpec  # noqa: E402
from producers import EventProducer, Topics, parse_event  # noqa: E402
from producers.integrations.litellm import (  # noqa: E402
    DECISION_ID,
    BanditRoutingStrategy,
    OutcomeLogger,
    mock_deployment,
)
from stream_app.ops.feedback import feedback_app  # noqa: E402
from tests._worker_proc import WorkerProcess  # noqa: E402
from tests.integration._stream_helpers import arm_counts, read_topic, wait_for  # noqa: E402

pytestmark = pytest.mark.integration

CHEAP, STRONG = 1e-6, 1e-4  # dollars per token; a mock answer is 30 tokens
SPEC = RewardSpec(
    quality_weight=0.6,
    cost_weight=0.3,
    latency_weight=0.1,
    cost_cap=0.003,  # 30 tokens of the strong deployment
    latency_cap_ms=2000.0,
    window_seconds=600.0,
)
CHAT = "Hi! How are you today?"
CODE = "Fix this:\n```python\ndef add(a, b):\n    return a - b\n```"


@pytest.fixture
def callbacks():
    """``litellm.callbacks`` for the test; afterwards every list LiteLLM copies callbacks
    into is restored too, so no logger keeps running into later tests."""
    lists = [n for n in dir(litellm) if n.endswith("callback") or n.endswith("callbacks")]
    saved = {n: list(v) for n in lists if isinstance(v := getattr(litellm, n), list)}
    yield litellm.callbacks
    for name, items in saved.items():
        getattr(litellm, name)[:] = items


@pytest.fixture
def worker(settings, unique, tmp_path):
    w = WorkerProcess(settings, "w1", app_id=f"g{unique}", workdir=tmp_path, loglevel="warning")
    w.start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


def routed(settings, redis_store, seed: int):
    """A Router over the cheap and strong deployments, its strategy, policy created."""
    router = litellm.Router(
        model_list=[
            mock_deployment("chat", "cheap", cost_per_token=CHEAP),
            mock_deployment("chat", "strong", cost_per_token=STRONG),
        ],
        num_retries=0,
    )
    strategy = BanditRoutingStrategy(settings, reward_spec=SPEC, seed=seed).attach(router)
    redis_store.create(strategy.policy_config("chat", rollout_fraction=1.0))
    wait_for(lambda: strategy.selector("chat").config is not None, 10, "the policy loaded")
    return router, strategy


def reward_of(bootstrap: str, topic: str, decision_id: str):
    for m in read_topic(bootstrap, topic, timeout=10.0):
        if m.key() == decision_id.encode():
            return parse_event(m.value())
    return None


async def test_posted_quality_closes_the_reward_within_a_second(
    settings, redis_store, worker, callbacks
):
    router, strategy = routed(settings, redis_store, seed=0)
    callbacks.append(OutcomeLogger(strategy, expect_feedback=True))
    topics = Topics.from_settings(settings)
    metadata: dict = {}
    try:
        await router.acompletion(
            model="chat", messages=[{"role": "user", "content": CHAT}], metadata=metadata
        )
        decision_id = metadata[DECISION_ID]
        producer = EventProducer(settings).start()  # a feedback server runs long: connected
        await asyncio.sleep(1.0)  # cost and latency are in; the reward waits for the quality
        assert reward_of(settings.kafka_bootstrap, topics.rewards, decision_id) is None
        async with TestClient(TestServer(feedback_app(producer, topics, "tok"))) as client:
            posted = time.time()
            r = await client.post(
                "/v1/feedback",
                json={"decision_id": decision_id, "quality": 0.9},
                headers={"Authorization": "Bearer tok"},
            )
            assert r.status == 202
            reward = await asyncio.to_thread(
                wait_for,
                lambda: reward_of(settings.kafka_bootstrap, topics.rewards, decision_id),
                10,
                "the reward",
            )
    finally:
        strategy.close()
    assert reward.components.quality == 0.9 and reward.reason in ("complete", "final")
    assert reward.components.cost == pytest.approx(30 * metadata_price(metadata) / 0.003)
    # the acceptance bound of the feedback API (the window would have closed it after 600 s)
    assert reward.reward_ts - posted < 1.0, f"reward {reward.reward_ts - posted:.3f} s after"


def metadata_price(metadata: dict) -> float:
    return CHEAP if metadata["rlc_arm"] == "cheap" else STRONG


def quality(rng: random.Random):
    """Short chat: both answer well (cheap wins on cost); code: only the strong one does."""

    def score(kwargs: dict, response: object) -> float:
        served = kwargs["litellm_params"]["model_info"]["id"]
        code = "```" in kwargs["messages"][-1]["content"]
        base = {(False, "cheap"): 0.8, (False, "strong"): 0.85}.get((code, served))
        if base is None:
            base = 0.95 if served == "strong" else 0.2
        return min(max(base + rng.uniform(-0.1, 0.1), 0.0), 1.0)

    return score


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [7, 11])
async def test_router_learns_cheap_for_chat_and_strong_for_code(
    settings, redis_store, worker, callbacks, seed
):
    n = 2_000
    rng = random.Random(seed)
    router, strategy = routed(settings, redis_store, seed=seed)
    logger = OutcomeLogger(strategy, quality_fn=quality(rng))
    callbacks.append(logger)
    served: list[tuple[str, str]] = []
    try:
        for start in range(0, n, 10):  # ten requests in flight at a time
            kinds = [rng.choice(("chat", "code")) for _ in range(10)]
            calls = [
                router.acompletion(
                    model="chat",
                    messages=[{"role": "user", "content": CHAT if k == "chat" else CODE}],
                    metadata={},
                    user=f"user{start + i}",
                )
                for i, k in enumerate(kinds)
            ]
            for kind, response in zip(kinds, await asyncio.gather(*calls), strict=True):
                served.append((kind, response._hidden_params["model_id"]))
            await asyncio.sleep(0.005)  # let the callbacks of the batch run
        await asyncio.sleep(0.5)
        assert logger.reported == n and logger.failures == 0
        total = await asyncio.to_thread(
            wait_for,
            lambda: sum(arm_counts(redis_store, "litellm.chat").values()) >= n,
            60,
            "every outcome in the parameters",
        )
        assert total
    finally:
        strategy.close()
    assert sum(arm_counts(redis_store, "litellm.chat").values()) == n  # each exactly once
    last = served[3 * n // 4 :]
    for kind, right in (("chat", "cheap"), ("code", "strong")):
        picks = [arm for k, arm in last if k == kind]
        share = picks.count(right) / len(picks)
        assert share >= 0.8, f"{kind}: {share:.0%} to {right} in the last quarter"
