"""``rl-commons demo``, short: it finishes, writes its report, and stops everything it started —
also when interrupted with Ctrl-C (SIGINT) or SIGTERM in the middle of the run.

The demo starts its own embedded broker, Redis, stream worker and dashboard; these tests
run it as a child process exactly as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _demo(out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stream_app.ops.cli", "demo", "--out", str(out), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie would still answer kill(0): look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _assert_all_stopped(out: Path) -> dict[str, int]:
    pids = json.loads((out / "pids.json").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    assert not [n for n, p in pids.items() if _alive(p)], f"still running: {pids}"
    return pids


def test_short_demo_finishes_with_a_report_and_stops_everything(tmp_path):
    out = tmp_path / "demo"
    proc = _demo(out, "--requests", "300", "--duration", "6", "--seed", "3")
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]

    pids = _assert_all_stopped(out)
    assert {"broker", "redis", "worker"} <= set(pids)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == 300
    # the stream worker joined (almost) every decision with its outcome
    assert summary["rewards"] >= 285
    report = json.loads((out / "report.json").read_text())
    counts = report["counts"]
    assert counts["rl"] > 0 and counts["baseline"] > 0
    assert counts["rl"] + counts["baseline"] == summary["rewards"]
    assert (out / "report.txt").read_text().startswith("Cohort report for policy")
    assert "Cohort report" in stdout and "rollout steps" in stdout
    png = out / "learning_curve.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert summary["change_at_request"] == 150
    assert "[" in stderr and "rollout" in stderr  # the progress line


def test_quality_floor_demo_creates_the_objective_moves_the_multiplier_and_reports_it(tmp_path):
    """Short: no statistical claim, only that the objective is wired end to end."""
    out = tmp_path / "demo"
    proc = _demo(
        out, "--objective", "quality-floor", "--quality-margin", "0.02",
        "--requests", "300", "--duration", "6", "--seed", "3", "--no-plot", "--no-dashboard",
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    _assert_all_stopped(out)

    summary = json.loads((out / "summary.json").read_text())
    # the policy in Redis had the objective, measured against gpt-4
    assert summary["objective"] == {
        "kind": "quality_floor",
        "quality_margin": 0.02,
        "latency_weight": 0.0,
        "confidence": 0.95,
        "power": 0.95,
    }
    # the worker moved λ from the rewards it applied, and the proxies' snapshots carried it
    assert summary["dual_end"] > 0
    assert summary["dual_history"] and max(lam for _, lam in summary["dual_history"]) > 0
    report = json.loads((out / "report.json").read_text())
    assert report["margin"] == 0.02
    assert report["arm_share"]["baseline"] == {"gpt-4": 1.0}
    constraint = report["constraint"]
    assert constraint["kind"] == "quality_floor" and constraint["target"] == -0.02
    assert constraint["verdict"] in ("held", "violated", "not enough data")
    assert "must stay ≥ -0.0200" in stdout and "multiplier λ" in stdout
    assert "rollout steps (fraction@request): 50%@0" in stdout
    # the report leaves out the warm-up (a sixth of a short run); the summary keeps the whole run
    assert summary["report_from"] == 50
    assert counts_sum(report) < summary["rewards"]
    assert set(summary["whole_run"]) == {"cost_reduction", "quality_difference", "verdict"}
    assert "after the warm-up" in stdout


def counts_sum(report: dict) -> int:
    return sum(report["counts"].values())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_stops_everything_it_started(tmp_path, sig):
    out = tmp_path / "demo"
    proc = _demo(out, "--requests", "5000", "--duration", "120", "--no-plot", "--no-dashboard")
    # wait until the worker runs and requests flow, then interrupt
    deadline = time.monotonic() + 120
    started = False
    while time.monotonic() < deadline and proc.poll() is None:
        pids_file = out / "pids.json"
        if pids_file.exists() and "worker" in json.loads(pids_file.read_text() or "{}"):
            started = True
            break
        time.sleep(0.2)
    assert started, "the demo did not start its worker"
    time.sleep(3)
    proc.send_signal(sig)
    try:
        _stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the demo did not stop within 60 s of the signal")
    assert proc.returncode != 0
    assert "stopped everything the demo started" in stderr
    _assert_all_stopped(out)
    assert not (out / "summary.json").exists()


def test_compose_sequence_init_worker_proxy_against_running_services(
    services, unique, tmp_path, redis_client
):
    """What docker-compose runs, in order, against services that are already up:
    `demo --setup-only` (init), `worker`, then `demo --external` (the proxy)."""
    from confluent_kafka.admin import AdminClient

    from stream_app.dev.embedded import free_port

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RL_COMMONS_KAFKA_BOOTSTRAP": services.bootstrap,
        "RL_COMMONS_REDIS_URL": services.redis_url,
        "RL_COMMONS_TOPIC_PREFIX": f"c{unique}.",
        "RL_COMMONS_TOPIC_PARTITIONS": "3",
        "RL_COMMONS_KEY_PREFIX": f"c{unique}",
    }
    cli = [sys.executable, "-m", "stream_app.ops.cli"]
    init = subprocess.run(
        [*cli, "demo", "--setup-only"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    topics = AdminClient({"bootstrap.servers": services.bootstrap}).list_topics(timeout=10).topics
    assert topics[f"c{unique}.decisions"].partitions.keys() == {0, 1, 2}
    assert redis_client.exists(f"c{unique}:{{provider_selection}}:config")
    # init is idempotent (compose may run it again)
    again = subprocess.run([*cli, "demo", "--setup-only"], env=env, cwd=ROOT, capture_output=True)
    assert again.returncode == 0

    worker = subprocess.Popen(
        [*cli, "worker", "--web-port", str(free_port()), "--datadir", str(tmp_path / "w")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out = tmp_path / "proxy"
        proxy = subprocess.run(
            [*cli, "demo", "--external", "--requests", "200", "--duration", "4", "--no-plot",
             "--out", str(out)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert proxy.returncode == 0, proxy.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["requests"] == 200 and summary["rewards"] >= 190
        assert set(json.loads((out / "pids.json").read_text())) == set()  # started nothing
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
