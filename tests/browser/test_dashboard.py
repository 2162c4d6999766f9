"""The dashboard in headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Most tests populate Redis the way a running loop writes it: parameters through
``store.apply`` and per-minute aggregates / health / freshness through the
``stream_app.aggregates`` helpers; one runs the real loop (broker, ``rl-commons worker``).
Set ``RL_COMMONS_DASHBOARD_SCREENSHOT=path.png`` to save a screenshot of the populated page
(docs/dashboard.png is made that way).
"""

from __future__ import annotations

import os

import pytest
from _browser import (
    CHROMIUM,
    TOKEN,
    make_policy,
    open_page,
    read_page,
    simulate_loop,
    wait,
)

from policy_store import make_config
from producers import Topics
from stream_app import aggregates

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: install Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver; `make test` does it)",
)


def test_page_shows_live_loop_data_and_charts_render(browser, server_factory, redis_store):
    make_policy(redis_store)
    simulate_loop(redis_store, "provider_selection", minutes=20, per_minute=40)
    server = server_factory()
    open_page(browser, server)
    by = "css selector"

    page = read_page(browser)
    assert page["status"] == "enabled"
    state = redis_store.read_state("provider_selection")
    assert {r[0]: r[1] for r in page["arms"]} == {a: f"{st.n:.0f}" for a, st in state.arms.items()}
    assert len(page["arms"]) == 3

    # charts: one point per cohort and minute with data, stacked share bars, component lines
    assert page["points"]["chart-reward"] == {"rl": 20, "baseline": 20}
    assert len(set(page["reward_y"])) > 5  # the points follow the data, not a flat placeholder
    assert page["bars"] >= 20 and set(page["bar_series"]) <= set(state.arms)
    for chart in ("quality", "cost", "latency"):
        assert page["points"][f"chart-{chart}"] == {"rl": 20, "baseline": 20}, chart
    assert "rl" in page["legend"] and "baseline" in page["legend"]
    assert page["cost_unit"] == "mean by cohort, normalised: 1 = $0.05 per call"

    cards = page["cards"]
    health = aggregates.read_health(redis_store.client, redis_store.keys("provider_selection"))
    assert cards["DLQ"] == str(health["dlq:schema"]) and cards["expired"] == str(health["expired"])
    assert cards["consumer lag"] == "180 ms"
    assert cards["join rate"] == f"{100 * 800 / (800 + health['expired']):.1f}%"

    # live: a new batch applied by the loop shows up without reloading the page
    before = int(browser.find_element(by, "body").get_attribute("data-version"))
    simulate_loop(redis_store, "provider_selection", minutes=1, per_minute=40, start_id=10_000)
    after = redis_store.version("provider_selection")
    assert after > before
    wait(browser, lambda d: d.find_element(by, "body").get_attribute("data-version") == str(after),
         what="the page to pick up the new version")  # fmt: skip

    shot = os.environ.get("RL_COMMONS_DASHBOARD_SCREENSHOT")
    if shot:
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(shot)


def test_rollout_and_kill_switch_on_the_page_reach_redis(browser, server_factory, redis_store):
    make_policy(redis_store)
    simulate_loop(redis_store, "provider_selection", minutes=3, per_minute=10)
    server = server_factory()
    open_page(browser, server)
    by = "css selector"
    assert browser.find_element(by, "#rollout-input").get_attribute("value") == "10"

    token = browser.find_element(by, "#token")
    token.clear()
    token.send_keys(TOKEN)
    box = browser.find_element(by, "#rollout-input")
    box.clear()
    box.send_keys("35")
    browser.find_element(by, "#rollout-apply").click()
    wait(browser, lambda d: "rollout set to 35%" in d.find_element(by, "#msg").text, what="msg")
    assert redis_store.get_config("provider_selection").rollout_fraction == pytest.approx(0.35)

    kill = browser.find_element(by, "#kill")
    assert kill.text == "Disable learned policy"
    kill.click()
    wait(browser, lambda d: d.find_element(by, "#status").text == "DISABLED", what="DISABLED")
    assert redis_store.get_config("provider_selection").enabled is False
    browser.find_element(by, "#kill").click()
    wait(browser, lambda d: d.find_element(by, "#status").text == "enabled", what="enabled")
    assert redis_store.get_config("provider_selection").enabled is True

    # a change made elsewhere (the CLI) shows up on the page
    redis_store.update_config("provider_selection", rollout_fraction=0.6)
    wait(browser, lambda d: d.find_element(by, "#rollout-input").get_attribute("value") == "60",
         what="rollout 60 from Redis")  # fmt: skip


def test_write_without_token_is_refused(browser, server_factory, redis_store):
    make_policy(redis_store)
    server = server_factory()
    open_page(browser, server)
    by = "css selector"
    browser.find_element(by, "#token").clear()
    browser.execute_script("sessionStorage.clear()")
    box = browser.find_element(by, "#rollout-input")
    box.clear()
    box.send_keys("90")
    browser.find_element(by, "#rollout-apply").click()
    wait(browser, lambda d: "missing or wrong token" in d.find_element(by, "#msg").text,
         what="the refusal message")  # fmt: skip
    assert redis_store.get_config("provider_selection").rollout_fraction == 0.1

    # the same over plain HTTP: no token, wrong token -> 401; right token -> 200
    status, body = server.request(
        "POST", "api/policy/provider_selection/rollout", {"fraction": 0.9}
    )
    assert status == 401 and "Authorization: Bearer" in body["error"]
    status, _ = server.request(
        "POST", "api/policy/provider_selection/enabled", {"enabled": False}, token="nope"
    )
    assert status == 401 and redis_store.get_config("provider_selection").enabled is True
    status, body = server.request(
        "POST", "api/policy/provider_selection/rollout", {"fraction": 0.2}, token=TOKEN
    )
    assert status == 200 and body["rollout_fraction"] == 0.2


def test_no_token_configured_refuses_every_write(server_factory, redis_store):
    make_policy(redis_store)
    server = server_factory(token=None)
    for path, body in (("rollout", {"fraction": 0.5}), ("enabled", {"enabled": False})):
        status, res = server.request("POST", f"api/policy/provider_selection/{path}", body, "x")
        assert status == 403 and "set RL_COMMONS_DASHBOARD_TOKEN" in res["error"]
    cfg = redis_store.get_config("provider_selection")
    assert (cfg.rollout_fraction, cfg.enabled) == (0.1, True)
    status, res = server.request("GET", "api/policies")
    assert status == 200 and res["writable"] is False
    assert [p["name"] for p in res["policies"]] == ["provider_selection"]


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("GET", "api/policy/ghost", None, 404, "no policy named 'ghost'"),
        ("POST", "api/policy/ghost/rollout", {"fraction": 0.5}, 404, "no policy named 'ghost'"),
        (
            "POST",
            "api/policy/provider_selection/rollout",
            {"fraction": 1.5},
            400,
            "between 0 and 1",
        ),
        ("POST", "api/policy/provider_selection/rollout", {"fraction": "x"}, 400, "out of range"),
        ("POST", "api/policy/provider_selection/enabled", {"enabled": "no"}, 400, "true or false"),
        ("GET", "api/policy/provider_selection?window=0", None, 400, "between 1 and"),
        ("GET", "api/policy/provider_selection?window=x", None, 400, "whole number"),
    ],
)
def test_api_errors_say_what_to_fix(server_factory, redis_store, method, path, body, status,
                                    message):  # fmt: skip
    make_policy(redis_store)
    server = server_factory()
    got, res = server.request(method, path, body, token=TOKEN)
    assert got == status and message in res["error"]
    cfg = redis_store.get_config("provider_selection")
    assert (cfg.rollout_fraction, cfg.enabled) == (0.1, True)


def test_policy_picker_switches_between_policies(browser, server_factory, redis_store):
    from selenium.webdriver.support.ui import Select

    make_policy(redis_store)
    redis_store.create(make_config(name="summaries", arms=["small", "large"], n_features=2,
                                   rollout_fraction=0.7, enabled=False))  # fmt: skip
    server = server_factory()
    open_page(browser, server)
    by = "css selector"
    picker = Select(browser.find_element(by, "#policy"))
    assert [o.text for o in picker.options] == ["provider_selection", "summaries"]
    picker.select_by_visible_text("summaries")
    wait(browser, lambda d: d.find_element(by, "#status").text == "DISABLED", what="summaries")
    page = read_page(browser)
    assert [row[0] for row in page["arms"]] == ["small", "large"]
    assert browser.find_element(by, "#rollout-input").get_attribute("value") == "70"
    assert "no data in this window yet" in browser.find_element(by, "#chart-reward").text
    assert browser.current_url.endswith("?policy=summaries")


def test_page_shows_data_from_a_real_worker(
    browser, server_factory, redis_store, settings, unique, tmp_path
):
    """The whole loop: events through the broker, a real `rl-commons worker`, the page."""
    from tests._worker_proc import WorkerProcess
    from tests.integration._stream_helpers import Sender, decision, outcome, wait_for

    make_policy(redis_store)
    worker = WorkerProcess(settings, "w1", app_id=f"g{unique}", workdir=tmp_path).start()
    try:
        worker.wait_ready()
        sender = Sender(settings.kafka_bootstrap, Topics(settings.topic_prefix))
        arms = ("gpt-4", "claude-3", "llama")
        for i in range(60):
            arm = arms[i % 3]
            cohort = "rl" if i % 2 else "baseline"
            sender.send(decision(i, arm=arm, policy="provider_selection", arms=arms, cohort=cohort))
            sender.send(outcome(i, quality=0.8, cost=0.01, latency=500.0, final=True))
        sender.p.flush(10)
        wait_for(
            lambda: (
                sum(st.n for st in redis_store.read_state("provider_selection").arms.values()) >= 60
            ),
            timeout=60,
            what="the worker to apply 60 rewards",
        )
        server = server_factory()
        open_page(browser, server)
        page = read_page(browser)
        assert {r[0]: r[1] for r in page["arms"]} == {
            "gpt-4": "20",
            "claude-3": "20",
            "llama": "20",
        }
        points = page["points"]["chart-reward"]
        assert set(points) == {"rl", "baseline"} and min(points.values()) >= 1
        assert page["bars"] >= 1
    finally:
        worker.stop()
