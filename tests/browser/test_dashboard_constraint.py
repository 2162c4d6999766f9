"""The dashboard's objective panel in headless Chromium: a constrained policy's target, the
value the multiplier enforces, the measured mean with its interval, λ now and per minute,
and the verdict; a weighted policy shows its objective line only."""

from __future__ import annotations

import os

import pytest
from _browser import (
    CHROMIUM,
    open_page,
    wait,
)
from _constrained_loop import run_loop

from policy_store import make_config

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not found")

READ_CONSTRAINT = """
const q = (sel) => Array.from(document.querySelectorAll(sel));
return {
  objective: document.getElementById("objective").textContent,
  hidden: document.getElementById("constraint").hidden,
  cards: Object.fromEntries(q("#constraint-cards .card").map(
    (c) => [c.dataset.metric, c.querySelector(".value").textContent])),
  verdict_class: (q('#constraint-cards .card[data-metric="verdict"]')[0] || {}).className || "",
  measured_title: (q('#constraint-cards .card[data-metric^="measured"]')[0] || {}).title || "",
  dual_points: q("#chart-dual circle.pt").length,
  note: document.getElementById("constraint-note").textContent,
};
"""


def read(driver) -> dict:
    return driver.execute_script(READ_CONSTRAINT)


def create(store, name, objective=None):
    extra = {"objective": objective} if objective else {}
    return store.create(
        make_config(name=name, arms=["gpt-4", "mini", "llama"], n_features=2,
                    baseline_arm="gpt-4", reward={"cost_cap": 0.05},
                    rollout_fraction=0.5, **extra)  # run_loop's split
    )  # fmt: skip


def test_constraint_card_and_multiplier_chart(browser, server_factory, redis_store):
    create(redis_store, "route", {"kind": "budget", "max_cost": 0.02})
    run_loop(redis_store, "route", minutes=5)  # λ after each minute: 0.002 … 0.03
    open_page(browser, server_factory(), "route")
    page = read(browser)
    assert page["objective"] == "budget: maximise quality while mean cost ≤ $0.0200 per request"
    assert not page["hidden"]
    cards = page["cards"]
    assert cards["budget"] == "$0.0200"
    assert cards["enforced at"].startswith("$0.01")
    assert cards["measured cost"].startswith("$0.01") and " ± 0.000" in cards["measured cost"]
    assert cards["multiplier λ"] == "0.0300"
    assert cards["verdict"] == "held" and "ok" in page["verdict_class"].split()
    assert "95% interval; mean over n = 1000" in page["measured_title"]
    assert page["dual_points"] == 5 and page["note"] == ""

    # the objective changes on the live policy: the learned traffic is far under gpt-4's quality
    redis_store.update_config("route", objective={"kind": "quality_floor", "quality_margin": 0.01})
    wait(browser, lambda d: read(d)["cards"].get("verdict") == "violated",
         what="the new objective's verdict")  # fmt: skip
    page = read(browser)
    assert page["objective"].startswith("quality floor: minimise cost while mean quality ≥ gpt-4")
    assert "bad" in page["verdict_class"].split()
    assert page["cards"]["quality floor"].startswith("0.8")


def test_weighted_policy_shows_its_objective_only(browser, server_factory, redis_store):
    create(redis_store, "plain")
    open_page(browser, server_factory(), "plain")
    page = read(browser)
    assert page["objective"].startswith("weighted reward 0.5·quality + 0.3·(1 − cost)")
    assert page["hidden"] and page["cards"] == {}


def test_without_a_recorded_multiplier_the_chart_says_where_it_comes_from(
    browser,
    server_factory,
    redis_store,
):
    create(redis_store, "fresh", {"kind": "quality_floor", "quality_floor": 0.8})
    open_page(browser, server_factory(), "fresh")
    page = read(browser)
    assert page["cards"]["verdict"] == "not enough data" and page["dual_points"] == 0
    assert (
        "recorded by the stream workers" in page["note"]
        and "rl-commons report fresh" in (page["note"])
    )
