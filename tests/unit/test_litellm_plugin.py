"""The LiteLLM routing plugin and outcome callback against the real ``litellm`` package.

Deployments answer with ``mock_response`` (no network); selectors learn in-process.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
litellm = pytest.importorskip("litellm", reason="the optional extra rl-commons[litellm]")

from policy_store import RewardSpec, Settings  # noqa: E402
from producers import ProviderSelector, SafeProviderSelector  # noqa: E402
from producers.integrations.litellm import (  # noqa: E402
    DECISION_ID,
    BanditRoutingStrategy,
    OutcomeLogger,
    mock_deployment,
    openai_features,
    policy_name,
    report_feedback,
)

SPEC = RewardSpec(cost_cap=0.01, latency_cap_ms=2000.0, required=("cost", "latency"))
WITH_QUALITY = RewardSpec(cost_cap=0.01, latency_cap_ms=2000.0)  # waits for a quality
CHAT = [{"role": "user", "content": "hello there"}]


class Recording:
    """Wraps a selector's ``report_outcome`` to keep every part it was given."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, dict]] = []
        self.selectors: dict[str, ProviderSelector] = {}

    def wrap(self, selector: ProviderSelector) -> ProviderSelector:
        original = selector.report_outcome

        def report(decision_id: str, **parts: object) -> bool:
            self.parts.append((decision_id, parts))
            return original(decision_id, **parts)

        selector.report_outcome = report  # type: ignore[method-assign]
        self.selectors[selector.policy] = selector
        return selector


def in_process(recording: Recording, serve: str | None = None, seed: int = 0, spec=SPEC):
    """A selector factory: in-process selectors; with ``serve``, a baseline that always
    serves that deployment (cohort ``baseline``, still logged)."""

    class Always:
        def select_provider(self, request: object) -> str:
            return serve

    def make(policy: str, arms: tuple[str, ...]) -> ProviderSelector:
        if serve is None:
            selector = ProviderSelector(
                providers=arms, feature_fn=openai_features, reward_spec=spec, seed=seed,
                policy=policy,
            )  # fmt: skip
        else:
            selector = SafeProviderSelector(
                0.0, baseline=Always(), providers=arms, feature_fn=openai_features,
                reward_spec=spec, seed=seed, policy=policy,
            )  # fmt: skip
        return recording.wrap(selector)

    return make


@pytest.fixture
def callbacks():
    saved = list(litellm.callbacks)
    yield litellm.callbacks
    litellm.callbacks[:] = saved


async def wait_for(predicate, timeout: float = 5.0) -> None:
    """Callbacks run as tasks on the caller's event loop: yield to them until ``predicate``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def wait_sync(predicate, timeout: float = 5.0) -> None:
    """Sync calls log from a thread pool: wait until ``predicate``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def make_router(model_list: list[dict], **kwargs: object):
    return litellm.Router(model_list=model_list, retry_after=0, **kwargs)


async def test_decision_in_metadata_and_outcome_in_dollars_and_ms(callbacks):
    rec = Recording()
    router = make_router(
        [mock_deployment("chat", "cheap", reply="a"), mock_deployment("chat", "strong", reply="b")]
    )
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec)).attach(router)
    callbacks.append(OutcomeLogger(strategy))
    metadata: dict = {}
    response = await router.acompletion(model="chat", messages=CHAT, metadata=metadata)
    decision_id = metadata[DECISION_ID]
    served = response._hidden_params["model_id"]
    assert served == metadata["rlc_arm"]
    await wait_for(lambda: rec.parts)
    assert len(rec.parts) == 1
    got_id, parts = rec.parts[0]
    assert got_id == decision_id and parts["provider"] == served and parts["final"] is True
    assert parts["cost_usd"] == pytest.approx(response._hidden_params["response_cost"])
    assert parts["cost_usd"] > 0  # dollars, normalised by the policy's cost_cap
    assert 0 < parts["latency_ms"] < 60_000  # milliseconds, not seconds
    assert "error" not in parts
    selector = rec.selectors[policy_name("litellm.", "chat")]
    assert selector.metrics()["pending"] == 0  # learnt in-process


async def test_without_a_cost_cap_dollars_are_left_out_and_a_warning_says_so(callbacks, caplog):
    rec = Recording()
    router = make_router(
        [mock_deployment("chat", "cheap", reply="a"), mock_deployment("chat", "strong", reply="b")]
    )
    no_cap = RewardSpec(latency_cap_ms=2000.0, required=("latency",))
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec, spec=no_cap)).attach(router)
    callbacks.append(OutcomeLogger(strategy))
    for _ in range(2):
        await router.acompletion(model="chat", messages=CHAT, metadata={})
    await wait_for(lambda: len(rec.parts) == 2)
    for _, parts in rec.parts:
        assert "cost_usd" not in parts and "cost" not in parts  # never misread as a fraction
        assert parts["latency_ms"] > 0
    warned = [r for r in caplog.records if "no cost_cap" in r.getMessage()]
    assert len(warned) == 1 and "--cost-cap" in warned[0].getMessage()


async def test_retry_charges_the_chosen_deployment_with_the_failure(callbacks):
    rec = Recording()
    router = make_router(
        [
            mock_deployment("chat", "cheap", reply="ok"),
            mock_deployment("chat", "broken", reply="litellm.RateLimitError"),
        ],
        num_retries=1,
    )
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec, serve="broken"))
    strategy.attach(router)
    logger = OutcomeLogger(strategy)
    callbacks.append(logger)
    metadata: dict = {}
    response = await router.acompletion(model="chat", messages=CHAT, metadata=metadata)
    assert response._hidden_params["model_id"] == "cheap"  # the retry went elsewhere
    await wait_for(lambda: rec.parts and logger.skipped >= 1)
    await asyncio.sleep(0.2)  # let any late callback run: none may report again
    assert len(rec.parts) == 1
    decision_id, parts = rec.parts[0]
    assert decision_id == metadata[DECISION_ID]
    assert parts["provider"] == "broken" and parts["error"] == "RateLimitError"
    assert parts["final"] is True
    assert not {"cost", "latency", "quality"} & {k for k, v in parts.items() if v is not None}


async def test_fallback_to_another_group_is_not_credited(callbacks):
    rec = Recording()
    router = make_router(
        [
            mock_deployment("chat", "cheap", reply="ok"),
            mock_deployment("chat", "broken", reply="litellm.InternalServerError"),
            mock_deployment("backup", "spare", reply="spare answer"),
        ],
        num_retries=0,
        fallbacks=[{"chat": ["backup"]}],
    )
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec, serve="broken"))
    strategy.attach(router)
    callbacks.append(OutcomeLogger(strategy))
    metadata: dict = {}
    response = await router.acompletion(model="chat", messages=CHAT, metadata=metadata)
    assert response.choices[0].message.content == "spare answer"
    await wait_for(lambda: rec.parts)
    await asyncio.sleep(0.2)
    assert [p["provider"] for _, p in rec.parts] == ["broken"]
    _, parts = rec.parts[0]
    assert parts["error"] and parts["final"] is True and parts.get("cost") is None
    assert list(rec.selectors) == [policy_name("litellm.", "chat")]  # no decision for backup


def test_sync_completion_and_late_feedback(callbacks):
    rec = Recording()
    router = make_router(
        [mock_deployment("chat", "cheap", reply="a"), mock_deployment("chat", "strong", reply="b")]
    )
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec, spec=WITH_QUALITY)).attach(
        router
    )
    callbacks.append(OutcomeLogger(strategy, expect_feedback=True))
    metadata: dict = {}
    router.completion(model="chat", messages=CHAT, metadata=metadata, user="alice")
    decision_id = metadata[DECISION_ID]
    wait_sync(lambda: rec.parts)
    assert rec.parts[0][1]["final"] is False  # quality is expected later
    assert report_feedback(strategy, decision_id, quality=0.9, model_group="chat") is True
    got_id, parts = rec.parts[-1]
    assert got_id == decision_id and parts["quality"] == 0.9 and parts["final"] is True
    selector = rec.selectors[policy_name("litellm.", "chat")]
    assert selector.metrics()["pending"] == 0  # the quality completed it


async def test_single_deployment_and_policy_errors_still_route(callbacks):
    router = make_router(
        [
            mock_deployment("solo", "only", reply="x"),
            mock_deployment("chat", "cheap", reply="a"),
            mock_deployment("chat", "strong", reply="b"),
        ]
    )

    def broken_features(request: object) -> list[float]:
        raise RuntimeError("feature bug")

    def factory(policy: str, arms: tuple[str, ...]) -> ProviderSelector:
        return ProviderSelector(providers=arms, feature_fn=broken_features, policy=policy)

    strategy = BanditRoutingStrategy(selector_factory=factory).attach(router)
    metadata: dict = {}
    out = await router.acompletion(model="solo", messages=CHAT, metadata=metadata)
    assert out._hidden_params["model_id"] == "only" and DECISION_ID not in metadata
    out = await router.acompletion(model="chat", messages=CHAT, metadata=metadata)
    assert out._hidden_params["model_id"] in ("cheap", "strong")
    assert strategy.errors == 1 and DECISION_ID not in metadata


def test_policy_config_for_a_group():
    router = make_router(
        [mock_deployment("gpt/eu", "a", reply="x"), mock_deployment("gpt/eu", "b", reply="y")]
    )
    strategy = BanditRoutingStrategy(reward_spec=SPEC).attach(router)
    config = strategy.policy_config("gpt/eu", rollout_fraction=0.5)
    assert config.name == "litellm.gpt_eu" and config.arms == ("a", "b")
    assert config.n_features == len(openai_features({})) and config.reward == SPEC


def test_forked_child_builds_its_own_selectors(callbacks):
    rec = Recording()
    router = make_router(
        [mock_deployment("chat", "cheap", reply="a"), mock_deployment("chat", "strong", reply="b")]
    )
    strategy = BanditRoutingStrategy(selector_factory=in_process(rec)).attach(router)
    strategy.selector("chat")
    assert strategy.selector_of("chat") is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's selectors
        os.write(write, b"1" if strategy.selector_of("chat") is None else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert strategy.selector_of("chat") is not None  # the parent keeps its own


def test_openai_features():
    x = openai_features(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "def f(): pass"},
                        {"type": "image_url", "image_url": {"url": "data:"}},
                    ],
                },
            ],
            "max_completion_tokens": 20_000,
            "response_format": {"type": "json_schema"},
            "stream": True,
        }
    )
    assert x == (1.0, 0.021, 0.2, 0.0, 1.0, 10.0, 1.0, 1.0, 1.0, 1.0)
    assert openai_features({"messages": "not a list", "max_tokens": "nan"})[5] == 0.0


@pytest.mark.parametrize(
    ("given", "linger"), [({}, 50.0), ({"producer_linger_ms": 5.0}, 5.0)], ids=["default", "set"]
)
def test_the_plugins_producer_batches_events_unless_the_settings_set_a_linger(
    monkeypatch, given, linger
):
    """Few produce requests (librdkafka's thread wakes per request, on the loop's host)."""
    from producers.integrations.litellm import _strategy

    monkeypatch.delenv("RL_COMMONS_PRODUCER_LINGER_MS", raising=False)
    monkeypatch.setattr(
        _strategy.SafeProviderSelector,
        "connect",
        classmethod(lambda cls, policy, settings, **kw: kw["producer"]),
    )
    settings = Settings(kafka_bootstrap="127.0.0.1:1", **given)
    producer = BanditRoutingStrategy(settings)._default_factory("litellm.chat", ("a", "b"))
    try:
        assert producer.describe()["linger.ms"] == linger
    finally:
        producer.close(0)


def test_public_names():
    import producers.integrations as integrations
    import producers.integrations.litellm as integration

    for module in (integrations, integration):
        assert all(getattr(module, name, None) is not None for name in module.__all__)
    from producers.integrations.litellm import proxy

    with pytest.raises(AttributeError):
        proxy.nothing_here  # noqa: B018  (only ``handler`` is made on demand)


def test_docstring_examples():
    import doctest

    from producers.integrations import _feedback
    from producers.integrations.litellm import _features, _mock, _strategy

    for module in (_feedback, _features, _mock, _strategy):
        assert doctest.testmod(module).failed == 0
