"""The dashboard's operator views in headless Chromium: idle vs broken loop states, arm
share per cohort, θ with feature names, what the learned policy picks per request kind,
read-only controls and the DLQ card (fixtures and helpers from ``test_dashboard``)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from _browser import (
    CHROMIUM,
    TOKEN,
    Server,
    make_policy,
    open_page,
    simulate_loop,
    wait,
)

from policy_store import Observation, make_config
from stream_app import aggregates

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not found")


# -- the views an operator asked for: idle vs broken, share per cohort, θ names, picks per kind --
# default feature vectors: bias, prompt_k, speed, quality, cost, has_code, max_tokens_k
KIND_FEATURES = {
    "code": (1.0, 0.5, 0.0, 0.0, 0.0, 1.0, 0.5),
    "speed": (1.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.5),
    "quality": (1.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.5),
}
BEST = {"code": "claude-3", "speed": "llama", "quality": "gpt-4"}

READ_VIEWS = """
const q = (sel) => Array.from(document.querySelectorAll(sel));
const card = (m) => document.querySelector(`#health .card[data-metric="${m}"]`);
return {
  picks: q("#picks tr").slice(1).map((tr) => Array.from(tr.cells).map((td) => td.textContent)),
  picks_note: document.getElementById("picks-note").textContent,
  theta: q("#arms td.theta").map((td) => td.textContent),
  bar_series: q("#chart-share rect.bar").map((r) => r.dataset.series),
  cohorts: q("#share-cohort option").map((o) => o.value),
  apply: card("last apply").querySelector(".value").textContent,
  apply_class: card("last apply").className,
  dlq: card("DLQ").querySelector(".value").textContent,
  dlq_title: card("DLQ").title,
  disabled: ["token", "rollout-range", "rollout-input", "rollout-apply", "kill"].map(
    (id) => document.getElementById(id).disabled),
  writable_note: document.getElementById("writable-note").textContent,
};
"""


def kinds_policy(store, seed: int) -> None:
    """A 7-feature policy (the default vector) that learned a different best arm per kind."""
    store.create(make_config(name="kinds", arms=["gpt-4", "claude-3", "llama"], n_features=7,
                             baseline_arm="gpt-4", reward={"cost_cap": 0.05}))  # fmt: skip
    rng = np.random.default_rng(seed)
    obs, rewards = [], []
    now = time.time()
    for i in range(600):
        kind = str(rng.choice(list(KIND_FEATURES)))
        arm = str(rng.choice(["gpt-4", "claude-3", "llama"]))
        r = float(np.clip((0.9 if arm == BEST[kind] else 0.4) + rng.normal(0, 0.05), 0, 1))
        obs.append(Observation(f"k{i}", arm, KIND_FEATURES[kind], r))
        cohort = "baseline" if i % 3 == 0 else "rl"
        comp = {"quality": r, "cost": 0.1, "latency": 0.2, "error": False}
        served = "gpt-4" if cohort == "baseline" else arm
        rewards.append({"cohort": cohort, "arm": served, "reward": r,
                        "reward_ts": now - 60 * (i % 10), "components": comp})  # fmt: skip
    store.apply("kinds", obs)
    pipe = store.client.pipeline()
    aggregates.add_rewards(pipe, store.keys("kinds"), rewards)
    pipe.hset(store.keys("kinds").extra("freshness"),
              mapping={"last_apply_ms": now * 1000, "last_lag_ms": 50.0})  # fmt: skip
    pipe.execute()


def open_views(browser, server, policy: str) -> dict:
    open_page(browser, server, policy)
    return browser.execute_script(READ_VIEWS)


@pytest.mark.parametrize("seed", [0, 1])
def test_picks_per_request_kind_share_per_cohort_and_named_theta(
    browser, server_factory, redis_store, seed
):
    kinds_policy(redis_store, seed)
    server = server_factory()
    page = open_views(browser, server, "kinds")
    picks = {row[0]: row[1] for row in page["picks"]}
    assert picks["code"] == "claude-3" and picks["speed (chat)"] == "llama"
    assert picks["quality"] == "gpt-4"
    assert "bias" in page["picks_note"] and "has_code" in page["picks_note"]
    assert all(t.startswith("bias ") and "prompt_k " in t for t in page["theta"])

    # arm share per cohort: the baseline cohort only ever served gpt-4, the learned one all arms
    assert page["cohorts"] == ["all", "baseline", "rl"]
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("css selector", "#share-cohort")).select_by_value("baseline")
    wait(browser, lambda d: set(d.execute_script(READ_VIEWS)["bar_series"]) == {"gpt-4"},
         what="baseline shares")  # fmt: skip
    Select(browser.find_element("css selector", "#share-cohort")).select_by_value("rl")
    wait(browser, lambda d: set(d.execute_script(READ_VIEWS)["bar_series"])
         == {"gpt-4", "claude-3", "llama"}, what="rl shares")  # fmt: skip


def test_idle_is_not_broken_and_lag_is(browser, server_factory, redis_store):
    make_policy(redis_store)
    old = time.time() - 15 * 60  # the last traffic, and the last apply, 15 minutes ago
    simulate_loop(redis_store, "provider_selection", minutes=5, per_minute=10, end=old)
    server = server_factory()
    page = open_views(browser, server, "provider_selection")
    assert page["apply"].endswith("ago · idle") and "idle" in page["apply_class"].split()
    assert "bad" not in page["apply_class"].split()

    keys = redis_store.keys("provider_selection")
    redis_store.client.hset(keys.extra("freshness"), "last_lag_ms", 600_000.0)
    wait(browser, lambda d: "bad" in d.execute_script(READ_VIEWS)["apply_class"].split(),
         what="lagging shown as broken")  # fmt: skip
    assert browser.execute_script(READ_VIEWS)["apply"].endswith("· lagging")


def test_read_only_controls_are_disabled(browser, server_factory, redis_store):
    make_policy(redis_store)
    page = open_views(browser, server_factory(token=None), "provider_selection")
    assert page["disabled"] == [True] * 5
    assert page["writable_note"].startswith("Read-only")
    page = open_views(browser, server_factory(), "provider_selection")
    assert page["disabled"] == [False] * 5


def test_dlq_card_counts_the_topic(browser, redis_store):
    from stream_app.ops._dlq import DeadLetter, summarise

    make_policy(redis_store)
    letters = [DeadLetter("schema", "bad", "provider_selection", 1.0, "t.decisions", 0, i, None, {})
               for i in range(2)] + [DeadLetter("bad_json", "x", None, 2.0, "t.outcomes", 0, 9,
                                                None, "{oops")]  # fmt: skip
    from aiohttp import web

    from stream_app.ops.dashboard import DashboardRoutes

    app = web.Application()
    DashboardRoutes(redis_store, TOKEN, dead_letters=lambda: summarise("t.dlq", letters)).add_to(
        app, ""
    )
    server = Server(redis_store, TOKEN, app=app)
    try:
        open_page(browser, server)
        wait(browser, lambda d: d.execute_script(READ_VIEWS)["dlq"] == "3", what="DLQ 3")
        title = browser.execute_script(READ_VIEWS)["dlq_title"]
        assert title.startswith("schema: 2, 1 naming no policy (topic t.dlq")
    finally:
        server.stop()
