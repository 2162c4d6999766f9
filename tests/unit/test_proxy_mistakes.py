"""A newcomer's mistakes on the proxy side are visible, never silent and never a crash:
units (cost_usd / latency_ms and the caps), a baseline of any callable, a policy that
never loads, events lost at close, and errors inside selection."""

from __future__ import annotations

import logging

import pytest

from policy_store import InMemoryPolicyStore, PolicyReader, RewardSpec, Settings, make_config
from producers import EventProducer, FeatureError, ProviderSelector, SafeProviderSelector

ARMS = ["gpt-4", "claude-3", "llama"]
CAPPED = RewardSpec(cost_cap=0.01, latency_cap_ms=10_000)


class Sent:
    """A producer stand-in that keeps what was sent."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bytes]] = []

    def send(self, topic, key, value) -> bool:
        self.events.append((topic, key, value))
        return True

    def close(self, timeout: float = 0) -> int:
        return 0

    def metrics(self) -> dict:
        return {}


def one_feature(request):
    return [1.0]


def learnt_reward(sel: ProviderSelector, arm: str) -> float:
    """b of a one-feature policy after one observation of x = 1: the reward itself."""
    return float(sel._source.store.read_state(sel.policy).arms[arm].b[0])


# -- item 1: units --------------------------------------------------------------------------------
def test_dollars_and_milliseconds_are_normalised_by_the_caps():
    sel = ProviderSelector(providers=ARMS, feature_fn=one_feature, reward_spec=CAPPED, seed=0)
    d = sel.select({"prompt": "x"})
    assert sel.report_outcome(d.decision_id, cost_usd=0.004, latency_ms=850.0)
    assert sel.report_outcome(d.decision_id, quality=0.9, final=True)
    expected = CAPPED.reward(quality=0.9, cost=0.004, latency=850.0)
    assert learnt_reward(sel, d.provider) == pytest.approx(expected)
    assert expected == pytest.approx(0.5 * 0.9 + 0.3 * (1 - 0.4) + 0.2 * (1 - 0.085))


def test_the_event_carries_the_raw_units_the_worker_normalises():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=ARMS, n_features=1, reward=CAPPED))
    reader = PolicyReader(store, "p", start=False)
    reader.refresh()
    sent = Sent()
    sel = ProviderSelector(feature_fn=one_feature, reader=reader, producer=sent, policy="p")
    d = sel.select({"prompt": "x"})
    sel.report_outcome(d.decision_id, cost_usd=0.004, latency_ms=850.0)
    outcome = sent.events[-1][2]
    assert b'"cost":0.004' in outcome and b'"latency":850.0' in outcome


@pytest.mark.parametrize(
    "parts, named",
    [
        ({"latency": 850.0}, "latency_cap_ms"),
        ({"cost": 4.0}, "cost_cap"),
        ({"latency_ms": 850.0}, "latency_cap_ms"),
        ({"cost_usd": 0.004}, "cost_cap"),
    ],
)
def test_a_raw_value_without_its_cap_is_refused_naming_the_cap(parts, named):
    sel = ProviderSelector(providers=ARMS, feature_fn=one_feature, seed=0)
    d = sel.select({"prompt": "x"})
    with pytest.raises(ValueError) as err:
        sel.report_outcome(d.decision_id, **parts)
    message = str(err.value)
    assert named in message and "rl-commons policy create" in message
    option = "--latency-cap-ms" if "latency" in named else "--cost-cap"
    assert option in message
    # nothing was learnt or half-reported: the decision still takes a correct report
    assert sel.report_outcome(d.decision_id, quality=0.8, cost=0.1, latency=0.2)
    assert sel.metrics()["pending"] == 0


def test_fractions_stay_valid_without_caps_and_both_spellings_are_refused():
    sel = ProviderSelector(providers=ARMS, feature_fn=one_feature, seed=0)
    d = sel.select({"prompt": "x"})
    with pytest.raises(ValueError, match="not both"):
        sel.report_outcome(d.decision_id, cost=0.1, cost_usd=0.1)
    assert sel.report_outcome(d.decision_id, quality=0.7, cost=0.0, latency=1.0)
    spec = RewardSpec()
    assert learnt_reward(sel, d.provider) == pytest.approx(spec.reward(0.7, 0.0, 1.0))


def test_update_from_response_takes_the_explicit_units_too():
    sel = ProviderSelector(providers=ARMS, feature_fn=one_feature, reward_spec=CAPPED, seed=0)
    p = sel.select_provider({"prompt": "x"})
    metrics = {"quality": 0.9, "cost_usd": 0.004, "latency_ms": 850.0}
    assert sel.update_from_response({"prompt": "x"}, p, metrics)
    assert learnt_reward(sel, p) == pytest.approx(CAPPED.reward(0.9, 0.004, 850.0))
    plain = ProviderSelector(providers=ARMS, feature_fn=one_feature, seed=0)
    with pytest.raises(ValueError, match="latency_cap_ms"):
        plain.update_from_response({"prompt": "x"}, "llama", {"latency": 850.0})


# -- item 2: the baseline is any callable or router object ----------------------------------------
def test_a_function_baseline_serves_without_errors(caplog):
    sel = SafeProviderSelector(exploration_rate=0.0, baseline=lambda req: "llama", seed=0)
    with caplog.at_level(logging.DEBUG, logger="producers"):
        served = {sel.select({"prompt": "x", "user_id": f"u{i}"}).provider for i in range(50)}
    assert served == {"llama"} and sel.baseline_errors == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_bound_method_and_a_router_object_both_work():
    class Router:
        def route(self, request):
            return "claude-3"

        def select_provider(self, request):
            return "gpt-4"

    by_method = SafeProviderSelector(exploration_rate=0.0, baseline=Router().route, seed=0)
    by_object = SafeProviderSelector(exploration_rate=0.0, baseline=Router(), seed=0)
    assert by_method.select({"prompt": "x", "user_id": "u"}).provider == "claude-3"
    assert by_object.select({"prompt": "x", "user_id": "u"}).provider == "gpt-4"


@pytest.mark.parametrize("bad, says", [("gpt-4", "got str"), (dict, "not an instance")])
def test_a_baseline_that_cannot_route_is_refused_at_construction(bad, says):
    with pytest.raises(TypeError, match=says):
        SafeProviderSelector(baseline=bad)


def test_a_failing_baseline_warns_once_and_counts_every_failure(caplog):
    def broken(request):
        raise RuntimeError("rule engine down")

    sel = SafeProviderSelector(exploration_rate=0.0, baseline=broken, providers=ARMS, seed=0)
    with caplog.at_level(logging.WARNING, logger="producers"):
        served = [sel.select({"prompt": "x", "user_id": f"u{i}"}).provider for i in range(30)]
    assert set(served) == {"gpt-4"} and sel.baseline_errors == 30
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "rule engine down" in warnings[0].getMessage()
    none_returned = SafeProviderSelector(exploration_rate=0.0, baseline=lambda r: None, seed=0)
    assert none_returned.select({"prompt": "x", "user_id": "u"}).provider == "gpt-4"
    assert none_returned.baseline_errors == 1


# -- item 3: a policy that never loads ------------------------------------------------------------
def test_a_misspelt_policy_warns_once_with_the_names_that_exist(caplog):
    store = InMemoryPolicyStore()
    store.create(make_config(name="provider_selection", arms=ARMS, n_features=7))
    reader = PolicyReader(store, "provider_selction", start=False)
    reader.refresh()
    sel = ProviderSelector(reader=reader, providers=ARMS, policy="provider_selction")
    with caplog.at_level(logging.WARNING, logger="producers"):
        for _ in range(20):
            assert sel.select({"prompt": "x"}).provider == "gpt-4"
        sel._source.diagnosis.join(5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "'provider_selction' not found" in warnings[0]
    assert "policies there: 'provider_selection'" in warnings[0]
    assert "did you mean 'provider_selection'?" in warnings[0]
    assert "serving 'gpt-4'" in warnings[0]


def test_an_unreachable_store_is_named_in_the_warning(caplog):
    class Down(InMemoryPolicyStore):
        def list_policies(self):
            raise ConnectionError("connection refused")

    reader = PolicyReader(Down(), "p", start=False)
    sel = ProviderSelector(reader=reader, providers=ARMS, policy="p")
    with caplog.at_level(logging.WARNING, logger="producers"):
        sel.select({"prompt": "x"})
        sel._source.diagnosis.join(5)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "policy 'p' not loaded" in warning and "connection refused" in warning


# -- item 6: events lost at close -----------------------------------------------------------------
def test_close_logs_the_events_it_lost_once(caplog):
    producer = EventProducer(Settings(kafka_bootstrap="127.0.0.1:1"))  # nothing listens
    for i in range(7):
        assert producer.send("rlc.decisions", f"k{i}", b"{}")
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert producer.close(timeout=0.2) == 7
        assert producer.close(timeout=0.2) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("producers")]
    assert len(warnings) == 1 and warnings[0].startswith("7 events not delivered to Kafka")
    assert "127.0.0.1:1" in warnings[0]


def test_close_with_nothing_lost_logs_nothing(caplog):
    producer = EventProducer(Settings(kafka_bootstrap="127.0.0.1:1"))
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert producer.close(timeout=0) == 0
    assert not [r for r in caplog.records if r.name.startswith("producers")]


# -- item 8: SafeProviderSelector.select never raises ---------------------------------------------
@pytest.mark.parametrize(
    "feature_fn, kind",
    [
        (lambda r: [1.0, 2.0], "feature_errors"),
        (lambda r: [float("nan")] * 7, "feature_errors"),
        (lambda r: 1 / 0, "select_errors"),
    ],
    ids=["wrong-length", "non-finite", "feature-function-raises"],
)
def test_a_feature_error_serves_the_baseline_and_is_counted(feature_fn, kind, caplog):
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=ARMS, n_features=7))
    reader = PolicyReader(store, "p", start=False)
    reader.refresh()
    plain = ProviderSelector(reader=reader, feature_fn=feature_fn, policy="p")
    with pytest.raises((FeatureError, ZeroDivisionError)):
        plain.select({"prompt": "x"})
    safe = SafeProviderSelector(
        baseline=lambda r: "claude-3", reader=reader, feature_fn=feature_fn, policy="p"
    )
    with caplog.at_level(logging.WARNING, logger="producers"):
        decisions = [safe.select({"prompt": "x", "user_id": f"u{i}"}) for i in range(5)]
    assert {(d.provider, d.cohort, d.logged) for d in decisions} == {
        ("claude-3", "baseline", False)
    }
    m = safe.metrics()
    assert m[kind] == 5 and m["feature_errors"] + m["select_errors"] == 5
    assert (m["fallbacks"], m["unlogged"], m["decisions"]) == (5, 5, 0)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "serving the baseline 'claude-3'" in warning and kind in warning


def test_wrong_length_is_a_feature_error_and_an_internal_error_a_select_error():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=ARMS, n_features=7))
    reader = PolicyReader(store, "p", start=False)
    reader.refresh()
    short = SafeProviderSelector(reader=reader, feature_fn=lambda r: [1.0], policy="p")
    short.select({"prompt": "x"})
    assert (short.feature_errors, short.select_errors) == (1, 0)
    assert short.select({"prompt": "x"}).provider == "gpt-4"  # the policy's fallback arm

    class Exploding(SafeProviderSelector):
        def _learned(self, view, x):
            raise RuntimeError("bug in the bandit")

    broken = Exploding(reader=reader, policy="p", seed=0)
    d = broken.select({"prompt": "x", "user_id": "u1"})
    assert (d.provider, d.logged, broken.select_errors) == ("gpt-4", False, 1)


def test_nothing_to_serve_still_raises_the_setup_error():
    reader = PolicyReader(InMemoryPolicyStore(), "missing", start=False)
    sel = SafeProviderSelector(reader=reader, policy="missing")
    with pytest.raises(LookupError, match="pass providers"):
        sel.select({"prompt": "x"})


def test_llm_client_warns_once_about_outcomes_it_cannot_report(caplog):
    import asyncio

    from producers import LLMClient

    sel = ProviderSelector(providers=ARMS, seed=0)  # no cost cap: cost is a fraction

    async def call_fn(provider, prompt, **kw):
        return "ok"

    client = LLMClient(sel, call_fn, cost_fn=lambda p, q, r: 2.5)  # dollars, no cap
    with caplog.at_level(logging.DEBUG, logger="producers"):
        for _ in range(10):
            assert asyncio.run(client.call("hi")) == "ok"
    warnings = [  # the client's own (a background warning of an earlier test may land here)
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name == "producers._client"
    ]
    assert client.report_errors == 10 and len(warnings) == 1
    assert "cost_cap" in warnings[0]
