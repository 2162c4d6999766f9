"""The real ``rl-commons`` entry point, run in a subprocess: every mistake an operator can make
is one line with the variable or option to fix and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policy_store import make_config

RLC = str(Path(sys.executable).with_name("rl-commons"))


def rlc(*argv: str, env: dict[str, str] | None = None, timeout: float = 60, **kw):
    """Run ``rl-commons ARGV`` with only the given RL_COMMONS_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("RL_COMMONS_")}
    if "stdout" not in kw:
        kw["capture_output"] = True
    return subprocess.run([RLC, *argv], env={**base, **(env or {})}, text=True, timeout=timeout,
                          **kw)  # fmt: skip


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# -- item 4: settings ---------------------------------------------------------------------------
def test_a_bad_setting_is_one_line_naming_the_variable():
    proc = rlc("inspect", "p", env={"RL_COMMONS_TOPIC_PARTITIONS": "abc"})
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("error: RL_COMMONS_TOPIC_PARTITIONS: 'abc' is invalid")
    assert "— set a whole number ≥ 1" in line


def test_an_http_redis_url_is_refused_with_the_fix():
    for argv, env in (
        (["inspect", "p"], {"RL_COMMONS_REDIS_URL": "http://127.0.0.1:6379/0"}),
        (["inspect", "p", "--redis-url", "http://127.0.0.1:6379/0"], {}),
    ):
        proc = rlc(*argv, env=env)
        assert proc.returncode == 1
        line = one_error_line(proc)
        assert line.startswith("error: RL_COMMONS_REDIS_URL: 'http://127.0.0.1:6379/0' is invalid")
        assert "use redis://HOST:6379/0" in line


def test_a_misspelt_variable_is_warned_about_with_the_close_match():
    proc = rlc("schema", "--type", "dlq", env={"RL_COMMONS_KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["DLQRecord"]["title"] == "DLQRecord"
    assert proc.stderr.strip() == (
        "warning: RL_COMMONS_KAFKA_BOOTSTRAP_SERVERS is not an rl-commons setting and is ignored — "
        "did you mean RL_COMMONS_KAFKA_BOOTSTRAP?"
    )


def test_security_protocol_in_lower_case_is_accepted(services, key_prefix, redis_store):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    env = {"RL_COMMONS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "RL_COMMONS_KEY_PREFIX": key_prefix,
           "RL_COMMONS_REDIS_URL": services.redis_url}  # fmt: skip
    proc = rlc("policy", "list", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("p ")


# -- item 11: small CLI items ---------------------------------------------------------------------
def test_schema_into_a_closed_pipe_ends_quietly():
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write: EPIPE every time
    try:
        proc = rlc("schema", stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_rollout_percentages(services, key_prefix, redis_store):
    redis_store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    opts = ["--redis-url", services.redis_url, "--key-prefix", key_prefix]
    proc = rlc("rollout", "p", "-10%", *opts)
    assert proc.returncode == 1
    assert "rollout fraction '-10%' is out of range" in one_error_line(proc)
    proc = rlc("rollout", "p", "0.5%", *opts)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "policy 'p': rollout 10% -> 0.5%"
    assert redis_store.get_config("p").rollout_fraction == pytest.approx(0.005)
    assert "0.5%" in rlc("policy", "list", *opts).stdout


def test_report_of_an_unknown_policy_fails_naming_the_known_ones(settings, redis_store):
    redis_store.create(make_config(name="route", arms=["a", "b"], n_features=2))
    proc = rlc("report", "nosuch", "--timeout", "20", env=settings.child_env())
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "no policy named 'nosuch'" in line and "use one of route" in line
    # an existing policy without rewards yet still gets its (empty) report
    assert rlc("report", "route", "--timeout", "20", env=settings.child_env()).returncode == 0


def test_no_help_text_shows_a_doubled_percent_sign():
    from stream_app.ops.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "%%" not in p.format_help(), name
    assert "cost reduction in %," in " ".join(rlc("report", "--help").stdout.split())


# -- item 5: the worker's start ----------------------------------------------------------------
def test_worker_with_kafka_down_says_so_in_one_line_and_retries(services, key_prefix):
    from stream_app.dev.embedded import free_port

    proc = rlc(
        "worker", "--kafka-bootstrap", f"127.0.0.1:{free_port()}", "--redis-url",
        services.redis_url, "--key-prefix", key_prefix, "--without-web", "--wait", "6",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) >= 2  # tried, said so, retried
    for line in lines:
        assert line.startswith("error: RL_COMMONS_KAFKA_BOOTSTRAP: Kafka unreachable at 127.0.0.1:")
    assert "; retrying in " in lines[0] and lines[-1].endswith("gave up after --wait 6 s")


def test_worker_with_redis_down_says_so(services, key_prefix):
    from stream_app.dev.embedded import free_port

    proc = rlc(
        "worker", "--kafka-bootstrap", services.bootstrap, "--without-web", "--wait", "0",
        env={"RL_COMMONS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )  # fmt: skip
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("error: RL_COMMONS_REDIS_URL: Redis unreachable at redis://127.0.0.1:")


def test_a_healthy_worker_prints_its_start_line(settings, redis_store, tmp_path):
    redis_store.create(make_config(name="route", arms=["a", "b"], n_features=2))
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("RL_COMMONS_")}
    proc = subprocess.Popen(
        [RLC, "worker", "--without-web", "--datadir", str(tmp_path / "data")],
        env={**base, **settings.child_env()}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "consuming" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the worker exited"
    finally:
        proc.terminate()
        proc.wait(30)
    assert line.startswith("rl-commons worker: consuming 4 partitions of ")
    assert f"{settings.topic_prefix}decisions + {settings.topic_prefix}outcomes" in line
    assert f"at {settings.kafka_bootstrap}" in line and settings.redis_url in line
    assert line.rstrip().endswith("policies: route")


# -- item 7: the DLQ for operators --------------------------------------------------------------
def _dead_letters(settings, topics):
    """Write DLQ records the way a worker does: two schema errors naming a policy, one bad JSON."""
    from confluent_kafka import Producer

    from producers import DLQRecord, kafka_config

    records = [
        DLQRecord.of("schema", "field required: arm", json.dumps(
            {"type": "decision", "policy": "route", "decision_id": f"d{i}"}).encode(),
            source_topic=topics.decisions, partition=1, offset=i, key=f"d{i}",
            timestamp=1_700_000_000.0 + i)
        for i in range(2)
    ] + [DLQRecord.of("bad_json", "not valid JSON", b"{oops", source_topic=topics.outcomes,
                      timestamp=1_700_000_010.0)]  # fmt: skip
    producer = Producer(kafka_config(settings, "producer"))
    for rec in records:
        producer.produce(topics.dlq, rec.to_bytes(), key=rec.key)
    assert producer.flush(20) == 0


def test_dlq_command_shows_the_latest_with_reason_and_payload(settings, topics):
    _dead_letters(settings, topics)
    proc = rlc("dlq", "--tail", "1", "--reason", "schema", env=settings.child_env())
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == (
        f"DLQ {topics.dlq}: 3 records (bad_json=1, schema=2); by policy: (none) 1, route 2"
    )
    assert out[1] == "latest 1 of reason schema (newest last):"
    assert "schema  policy route" in out[2] and "key d1" in out[2]
    assert out[3] == "  detail:  field required: arm"
    assert json.loads(out[4].removeprefix("  payload: "))["decision_id"] == "d1"
    data = json.loads(rlc("dlq", "--json", env=settings.child_env()).stdout)
    assert data["total"] == 3 and [d["reason"] for d in data["latest"]][-1] == "bad_json"
    assert data["latest"][-1]["payload"] == "{oops"


def test_inspect_counts_the_dlq_topic(settings, topics, redis_store):
    redis_store.create(make_config(name="route", arms=["a", "b"], n_features=2))
    _dead_letters(settings, topics)
    proc = rlc("inspect", "route", env=settings.child_env())
    assert proc.returncode == 0, proc.stderr
    assert "DLQ 2 (schema=2) + 1 naming no policy (`rl-commons dlq` lists them)" in proc.stdout
    rep = json.loads(rlc("inspect", "route", "--json", env=settings.child_env()).stdout)
    assert rep["dead_letters"] == {"topic": topics.dlq, "total": 2, "by_reason": {"schema": 2},
                                   "unattributed": 1}  # fmt: skip


def test_dlq_with_kafka_down_is_one_line(services):
    from stream_app.dev.embedded import free_port

    proc = rlc("dlq", "--kafka-bootstrap", f"127.0.0.1:{free_port()}", "--timeout", "3")
    assert proc.returncode == 1
    assert "cannot reach the broker at 127.0.0.1:" in one_error_line(proc)
