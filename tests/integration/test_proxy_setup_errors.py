"""Proxy-side mistakes against the real Redis, broker and `rl-commons` entry point: caps set
by `policy create`, a misspelt policy, Redis away at start, events lost at close, a function
as the baseline."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from policy_store import Settings, make_config
from producers import ProviderSelector, SafeProviderSelector

RLC = str(Path(sys.executable).with_name("rl-commons"))
ARMS = ["gpt-4", "claude-3", "llama"]


def rlc(services, key_prefix: str, *argv: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RL_COMMONS_")}
    env = {**base, "RL_COMMONS_REDIS_URL": services.redis_url, "RL_COMMONS_KEY_PREFIX": key_prefix}
    return subprocess.run([RLC, *argv], env=env, text=True, capture_output=True, timeout=60)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("producers")]


def test_policy_create_takes_the_caps_in_dollars_and_ms(services, key_prefix, redis_store):
    proc = rlc(services, key_prefix, "policy", "create", "capped", "--arms", "a,b",
               "--features", "2", "--cost-cap", "0.02", "--latency-cap-ms", "5000")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cost cap $0.02, latency cap 5000 ms" in proc.stdout
    reward = redis_store.get_config("capped").reward
    assert (reward.cost_cap, reward.latency_cap_ms) == (0.02, 5000.0)
    proc = rlc(services, key_prefix, "policy", "create", "--help")
    assert "--cost-cap DOLLARS" in proc.stdout and "--latency-cap-ms MS" in proc.stdout


def test_a_cap_that_is_not_positive_is_one_line(services, key_prefix, redis_store):
    proc = rlc(services, key_prefix, "policy", "create", "bad", "--arms", "a,b",
               "--features", "2", "--cost-cap", "0")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: bad --cost-cap 0: give a number > 0, e.g. --cost-cap 0.01 (dollars)"]
    assert redis_store.list_policies() == []


def test_a_misspelt_policy_is_warned_about_once(settings, redis_store, caplog):
    redis_store.create(make_config(name="provider_selection", arms=ARMS, n_features=7))
    with caplog.at_level(logging.WARNING, logger="producers"):
        selector = ProviderSelector.connect("provider_selction", settings, providers=ARMS)
        try:
            for _ in range(10):
                assert selector.select({"prompt": "hi"}).provider == "gpt-4"
            selector._source.diagnosis.join(10)
        finally:
            selector.close(timeout=1)
    (warning,) = [w for w in warnings_of(caplog) if "provider_selction" in w]
    assert f"Redis at {settings.redis_url}" in warning and settings.key_prefix in warning
    assert "policies there: 'provider_selection'" in warning
    assert "did you mean 'provider_selection'?" in warning


def test_redis_away_at_start_is_named(services, key_prefix, caplog):
    from stream_app.dev.embedded import free_port

    settings = Settings(
        kafka_bootstrap=services.bootstrap,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        key_prefix=key_prefix,
    )
    with caplog.at_level(logging.WARNING, logger="producers"):
        selector = SafeProviderSelector.connect("p", settings, baseline=lambda r: "llama")
        try:
            d = selector.select({"prompt": "hi"})
            assert (d.provider, d.logged) == ("llama", False)
            selector._source.diagnosis.join(10)
        finally:
            selector.close(timeout=1)
    (warning,) = warnings_of(caplog)
    assert "policy 'p' not loaded" in warning and "unreachable" in warning
    assert "serving 'llama'" in warning


def test_close_logs_the_events_lost_with_kafka_away(services, redis_store, key_prefix, caplog):
    from stream_app.dev.embedded import free_port

    redis_store.create(make_config(name="p", arms=ARMS, n_features=7))
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
        redis_url=services.redis_url,
        key_prefix=key_prefix,
    )
    selector = SafeProviderSelector.connect("p", settings, baseline=lambda r: "gpt-4", seed=1)
    for i in range(40):
        selector.select({"prompt": "hi", "user_id": f"u{i}"})
    with caplog.at_level(logging.WARNING, logger="producers"):
        selector.close(timeout=0.5)
    (warning,) = warnings_of(caplog)
    assert warning.startswith("40 events not delivered to Kafka at 127.0.0.1:")
    assert selector.producer.metrics()["delivery_failed"] == 40
