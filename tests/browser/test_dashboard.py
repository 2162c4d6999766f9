"""The dashboard in headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Most tests populate Redis the way a running loop writes it: parameters through
``store.apply`` and per-minute aggregates / health / freshness through the
``stream_app.aggregates`` helpers; one runs the real loop (broker, ``rl-commons worker``).
Set ``RL_COMMONS_DASHBOARD_SCREENSHOT=path.png`` to save a screenshot of the populated page
(docs/dashboard.png is made that way).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from policy_store import Observation, make_config
from producers import Topics
from stream_app import aggregates

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "t0ken-for-tests"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: install Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver; `make test` does it)",
)

# per arm: (quality mean, cost in dollars, latency in ms) of a simulated provider
PROVIDERS = {"gpt-4": (0.86, 0.030, 1400.0), "claude-3": (0.84, 0.012, 900.0),
             "llama": (0.62, 0.002, 500.0)}  # fmt: skip


def simulate_loop(store, name: str, *, minutes: int = 20, per_minute: int = 40, seed: int = 0,
                  start_id: int = 0, end: float | None = None) -> int:  # fmt: skip
    """Write ``minutes`` of a learning loop ending now: the rl cohort (epsilon-greedy on running
    means) and a baseline cohort (always the baseline arm). Returns the number of decisions."""
    cfg = store.get_config(name)
    rng = np.random.default_rng(seed)
    end = time.time() if end is None else end
    sums = {a: [0.0, 0.0] for a in cfg.arms}
    i = start_id
    keys = store.keys(name)
    for m in range(minutes):
        ts = end - 60 * (minutes - 1 - m)
        obs, rewards = [], []
        for _ in range(per_minute):
            cohort = "rl" if rng.random() < 0.7 else "baseline"
            if cohort == "baseline":
                arm = cfg.fallback_arm
            elif rng.random() < max(0.1, 1.0 - m / 6):  # exploration decays
                arm = str(rng.choice(cfg.arms))
            else:
                arm = max(cfg.arms, key=lambda a: sums[a][0] / sums[a][1] if sums[a][1] else 1.0)
            q0, c0, l0 = PROVIDERS[arm]
            q = float(np.clip(rng.normal(q0, 0.08), 0, 1))
            c = float(c0 * rng.uniform(0.6, 1.4))
            lat = float(l0 * rng.uniform(0.7, 1.5))
            error = bool(rng.random() < 0.01)
            r = cfg.reward.reward(q, c, lat, error)
            sums[arm][0] += r
            sums[arm][1] += 1
            x = (1.0, float(rng.random()), float(rng.random()))
            obs.append(Observation(f"d{i}", arm, x, r))
            # components as the stream app records them: normalised to [0, 1] by the caps
            comp = {"quality": q, "cost": cfg.reward.normalise_cost(c),
                    "latency": cfg.reward.normalise_latency(lat), "error": error}  # fmt: skip
            rewards.append(
                {"cohort": cohort, "arm": arm, "reward": r, "reward_ts": ts, "components": comp}
            )
            i += 1
        store.apply(name, obs)
        pipe = store.client.pipeline()
        aggregates.add_rewards(pipe, keys, rewards)
        aggregates.incr_health(
            pipe, keys,
            {"events_in": 2 * per_minute + 3, "joined": per_minute, "rewards": per_minute,
             "expired": 1 if m % 4 == 0 else 0, "late": 1 if m % 7 == 0 else 0,
             "dlq:schema": 1 if m % 9 == 0 else 0, "batches": 4, "applied": per_minute},
        )  # fmt: skip
        pipe.hset(keys.extra("freshness"), mapping={"last_apply_ms": ts * 1000,
                  "last_apply_latency_ms": 3.2, "last_lag_ms": 180.0})  # fmt: skip
        pipe.execute()
    return i - start_id


def make_policy(store, name: str = "provider_selection"):
    return store.create(
        make_config(name=name, arms=["gpt-4", "claude-3", "llama"], n_features=3,
                    baseline_arm="gpt-4", rollout_fraction=0.1,
                    reward={"cost_cap": 0.05, "latency_cap_ms": 3000.0})
    )  # fmt: skip


class Server:
    """The dashboard's aiohttp app on a free port, in a thread with its own event loop."""

    def __init__(self, store, token: str | None, app=None) -> None:
        from aiohttp import web

        from stream_app.dev.embedded import free_port
        from stream_app.ops.dashboard import dashboard_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app if app is not None else dashboard_app(store, token))
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def request(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def server_factory(redis_store):
    started = []

    def start(token: str | None = TOKEN) -> Server:
        s = Server(redis_store, token)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rlc-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1400,1500",
                f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, predicate, timeout: float = 15.0, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: predicate(d), message=f"timed out waiting for {what}"
    )


def open_page(driver, server: Server, policy: str = "provider_selection") -> None:
    driver.get(f"{server.url}?policy={policy}")
    wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-loaded") == "1",
         what="the first data load")  # fmt: skip


READ_PAGE = """
const q = (sel) => Array.from(document.querySelectorAll(sel));
const points = {};
for (const svg of q("svg.chart")) {
  points[svg.id] = {};
  for (const g of svg.querySelectorAll("g.series"))
    points[svg.id][g.dataset.series] = g.querySelectorAll("circle.pt").length;
}
return {
  status: document.getElementById("status").textContent,
  arms: q("#arms tr").slice(1).map((tr) => Array.from(tr.cells).map((td) => td.textContent)),
  points,
  reward_y: q("#chart-reward circle.pt").map((c) => c.getAttribute("cy")),
  bars: q("#chart-share rect.bar").length,
  bar_series: q("#chart-share rect.bar").map((r) => r.dataset.series),
  legend: document.getElementById("legend-reward").textContent,
  cost_unit: document.getElementById("cost-unit").textContent,
  cards: Object.fromEntries(q("#health .card").map(
    (c) => [c.dataset.metric, c.querySelector(".value").textContent])),
};
"""


def read_page(driver) -> dict:
    """Everything the assertions need, read in one script so a re-render cannot interleave."""
    return driver.execute_script(READ_PAGE)


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
