"""docker-compose.yml, Dockerfile and Prometheus config, checked without Docker.

The compose file must describe the production-shaped stack (Kafka in KRaft mode,
Redis with AOF, a one-shot init, scalable workers, the demo proxy, Prometheus),
every ``rl-commons`` command it runs must parse with the real CLI, and every
``RL_COMMONS_*`` variable it sets must be a field of ``policy_store.Settings``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
RLC_SERVICES = ("init", "worker", "proxy", "dashboard")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def stack(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list), "write commands as lists so that they are parsed exactly"
    return [str(c) for c in cmd]


def test_the_stack_has_every_service(stack):
    assert {"kafka", "redis", "init", "worker", "proxy", "prometheus"} <= set(stack)


def test_kafka_is_the_official_image_in_kraft_mode(stack):
    kafka = stack["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(env["KAFKA_NODE_ID"] + "@")
    assert not any("ZOOKEEPER" in k for k in env)
    assert "zookeeper" not in stack
    # data on a volume, at the log dir Kafka is told to use
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])


def test_redis_is_the_official_image_with_aof_and_a_volume(stack):
    redis = stack["redis"]
    assert re.match(r"^redis:\d", redis["image"])
    cmd = _command(redis)
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_named_volumes_are_declared(compose, stack):
    declared = set(compose.get("volumes") or {})
    for name, svc in stack.items():
        for v in svc.get("volumes", []):
            source = v.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
            else:
                assert (ROOT / source).exists(), f"{name} mounts missing file {source}"


def test_healthchecks_and_startup_order(stack):
    for name in ("kafka", "redis", "worker", "prometheus"):
        assert "test" in stack[name]["healthcheck"], name
    init_deps = stack["init"]["depends_on"]
    assert init_deps["kafka"]["condition"] == "service_healthy"
    assert init_deps["redis"]["condition"] == "service_healthy"
    assert stack["init"]["restart"] == "no"
    assert stack["worker"]["depends_on"]["init"]["condition"] == ("service_completed_successfully")


def test_workers_can_be_scaled(stack):
    worker = stack["worker"]
    # a fixed container name or host port would make `--scale worker=N` fail
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "6066" in [str(p) for p in worker.get("expose", [])]


def test_rl_commons_services_use_the_image_built_here(stack):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["rl-commons"\]', dockerfile, re.M)
    for name in RLC_SERVICES:
        if name in stack:
            assert stack[name].get("build") == "." and stack[name]["image"].startswith(
                "rl-commons"
            ), name


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


@pytest.mark.parametrize("name", RLC_SERVICES)
def test_every_rl_commons_command_exists_and_parses(stack, name):
    from stream_app.ops.cli import build_parser

    if name not in stack:
        pytest.skip(f"no {name} service")
    cmd = _command(stack[name])
    parser = build_parser()
    assert cmd[0] in _subparsers(parser), f"`rl-commons {cmd[0]}` is not a CLI command"
    try:
        args = parser.parse_args(cmd)
    except SystemExit as exc:  # argparse refuses unknown options this way
        pytest.fail(f"`rl-commons {' '.join(cmd)}` does not parse (exit {exc.code})")
    assert callable(args.func)


def test_every_rl_commons_env_var_is_a_setting(stack):
    from policy_store import Settings

    fields = {f"RL_COMMONS_{f.upper()}" for f in Settings.model_fields}
    seen = set()
    for name, svc in stack.items():
        for key in _env(svc):
            if key.startswith("RL_COMMONS_"):
                seen.add(key)
                assert key in fields, f"{name} sets {key}, which Settings does not read"
    assert {"RL_COMMONS_KAFKA_BOOTSTRAP", "RL_COMMONS_REDIS_URL"} <= seen
    # and the values are valid settings
    for name in RLC_SERVICES:
        if name in stack:
            env = {
                k.removeprefix("RL_COMMONS_").lower(): v
                for k, v in _env(stack[name]).items()
                if k.startswith("RL_COMMONS_") and "${" not in v
            }
            Settings(**env)


def test_services_reach_kafka_and_redis_by_their_service_names(stack):
    for name in RLC_SERVICES:
        if name in stack:
            env = _env(stack[name])
            assert env["RL_COMMONS_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"
            assert env["RL_COMMONS_REDIS_URL"].startswith("redis://redis:")


def test_prometheus_scrapes_every_worker_replica(stack):
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    worker_job = next(j for j in jobs.values() if j.get("dns_sd_configs"))
    sd = worker_job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    cmd = _command(stack["worker"])
    assert str(sd["port"]) == cmd[cmd.index("--web-port") + 1]
    mounted = [v for v in stack["prometheus"]["volumes"] if "prometheus.yml" in v]
    assert mounted and mounted[0].startswith("./deploy/prometheus.yml:")
