"""The LiteLLM proxy server started from the documented config (docs/integrations/
litellm-proxy.yaml) in a subprocess, called with the official ``openai`` client: the
decision id comes back as a response header, its decision and outcome reach Kafka, and a
quality posted for it closes the reward in the worker."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
PROXY_MODULES = ("litellm", "fastapi", "uvicorn", "backoff", "orjson", "apscheduler", "openai")
missing = [m for m in PROXY_MODULES if importlib.util.find_spec(m) is None]
if missing:
    pytest.skip(f"LiteLLM proxy server not installed ({missing})", allow_module_level=True)

from policy_store import Settings  # noqa: E402
from producers import Topics, parse_event  # noqa: E402
from producers.integrations.litellm import DECISION_HEADER, policy_name  # noqa: E402
from stream_app.dev import free_port, stop_process_group  # noqa: E402
from tests._worker_proc import WorkerProcess  # noqa: E402
from tests.integration._stream_helpers import arm_counts, read_topic, wait_for  # noqa: E402

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "litellm-proxy.yaml"
KEY = "sk-test-master"


def start_proxy(settings: Settings, tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    env = {
        **os.environ,
        **settings.child_env(),
        "LITELLM_MASTER_KEY": KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    log = tmp_path / "proxy.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "litellm.proxy.proxy_cli", "--config", str(CONFIG)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1):
                return proc, port, log
        except OSError:
            time.sleep(0.3)
    stop_process_group(proc, 5)
    raise AssertionError(f"proxy not up in 90 s: {log.read_text()[-3000:]}")


@pytest.mark.timeout(240)
def test_proxy_server_routes_through_the_policy(settings, redis_store, unique, tmp_path):
    import openai

    worker = WorkerProcess(
        settings, "w1", app_id=f"g{unique}", workdir=tmp_path, loglevel="warning"
    )
    worker.start()
    proc, port, log = start_proxy(settings, tmp_path)
    topics = Topics.from_settings(settings)
    policy = policy_name("litellm.", "chat")
    try:
        worker.wait_ready()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
        ids = []
        for i in range(20):
            raw = client.chat.completions.with_raw_response.create(
                model="chat",
                messages=[{"role": "user", "content": f"hello {i}"}],
                user=f"user{i}",
            )
            completion = raw.parse()
            assert completion.choices[0].message.content.startswith("answer from")
            decision_id = raw.headers.get(DECISION_HEADER)
            if decision_id:  # the first requests run while the new policy loads
                served = raw.headers["x-litellm-model-id"]
                ids.append((decision_id, served))
        assert len(ids) >= 10, log.read_text()[-3000:]
        assert set(redis_store.get_config(policy).arms) == {"cheap", "strong"}

        def logged():
            found = {}
            for topic in (topics.decisions, topics.outcomes):
                for m in read_topic(settings.kafka_bootstrap, topic, timeout=10.0):
                    found.setdefault(m.key().decode(), []).append(parse_event(m.value()))
            return found if all(len(found.get(d, ())) >= 2 for d, _ in ids) else None

        events = wait_for(logged, 60, "decisions and outcomes of the proxied calls")
        for decision_id, served in ids:
            decision = next(e for e in events[decision_id] if e.type == "decision")
            outcome = next(e for e in events[decision_id] if e.type == "outcome")
            assert decision.arm == served == outcome.arm and decision.policy == policy
            price = 1e-6 if served == "cheap" else 1e-4
            assert outcome.cost == pytest.approx(30 * price)  # dollars
            assert outcome.latency is not None and outcome.final is True  # milliseconds
        wait_for(
            lambda: sum(arm_counts(redis_store, policy).values()) >= len(ids),
            30,
            "the rewards in Redis",
        )
    finally:
        stop_process_group(proc, 10)
        worker.stop()
