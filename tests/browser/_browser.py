"""What the dashboard's browser tests share: the Chromium paths, a dashboard server on
a free port, a simulated loop that writes Redis the way a worker does, and page helpers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from policy_store import Observation, make_config
from stream_app import aggregates

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "t0ken-for-tests"


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
