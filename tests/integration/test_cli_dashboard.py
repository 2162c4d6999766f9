"""`rl-commons dashboard` as a process, and the same routes mounted under a prefix."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from aiohttp import web

from policy_store import make_config
from stream_app.dev.embedded import free_port
from stream_app.ops.dashboard import mount_dashboard


def fetch(url: str, body=None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_dashboard_command_serves_page_and_api(services, key_prefix, redis_store):
    redis_store.create(make_config(name="route", arms=["a", "b"], n_features=2))
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "rl-commons")
    env = {**os.environ, "RL_COMMONS_REDIS_URL": services.redis_url,
           "RL_COMMONS_KEY_PREFIX": key_prefix, "RL_COMMONS_DASHBOARD_TOKEN": "s3cret"}  # fmt: skip
    proc = subprocess.Popen(
        [exe, "dashboard", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, page = fetch(base)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.1)
        assert status == 200 and b"<svg" in page
        # no CDN: nothing loaded from elsewhere, all script inline
        assert not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", page)
        assert b"<script src" not in page
        status, raw = fetch(base + "api/policies")
        assert status == 200 and [p["name"] for p in json.loads(raw)["policies"]] == ["route"]
        status, _ = fetch(base + "api/policy/route/rollout", {"fraction": 0.4}, token="s3cret")
        assert status == 200 and redis_store.get_config("route").rollout_fraction == 0.4
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"dashboard on http://127.0.0.1:{port}/" in out


def test_dashboard_command_reports_unreachable_redis(capsys):
    from stream_app.ops.cli import main

    code = main(["dashboard", "--port", "0", "--redis-url", "redis://127.0.0.1:1/0"])
    assert code == 1 and "Redis unreachable at redis://127.0.0.1:1/0" in capsys.readouterr().err


def test_routes_mount_under_a_prefix(redis_store):
    """What a Faust worker does with ``mount_dashboard(faust_app.web.web_app, …)``."""
    redis_store.create(make_config(name="route", arms=["a"], n_features=1))

    async def scenario() -> None:
        app = web.Application()
        mount_dashboard(app, redis_store, token=None, prefix="/dashboard")
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            base = f"http://127.0.0.1:{port}/dashboard"
            status, page = await asyncio.to_thread(fetch, base)  # redirected to /dashboard/
            assert status == 200 and b"rl-commons dashboard" in page
            status, raw = await asyncio.to_thread(fetch, base + "/api/policy/route")
            assert status == 200 and json.loads(raw)["config"]["arms"] == ["a"]
            status, raw = await asyncio.to_thread(
                fetch, base + "/api/policy/route/enabled", {"enabled": False}, "t"
            )
            assert status == 403 and b"RL_COMMONS_DASHBOARD_TOKEN" in raw
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


@pytest.mark.parametrize("argv", [["dashboard", "--help"]])
def test_dashboard_help(capsys, argv):
    from stream_app.ops.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "RL_COMMONS_DASHBOARD_TOKEN" in out and "--port" in out
