"""Objectives through the real ``rl-commons`` entry point (a subprocess) against a real Redis:
``policy create`` with an objective, ``rl-commons objective`` on a live policy, and what
``inspect`` and ``report --source redis`` show about a constrained policy; the workers'
aggregates recording the multiplier λ per minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _constrained_loop import run_loop
from test_cli_friction import one_error_line

from policy_store import Observation, make_config
from stream_app.aggregates import read_buckets

RLC = str(Path(sys.executable).with_name("rl-commons"))


@pytest.fixture
def rlc(services, key_prefix):
    """Run ``rl-commons ARGV`` against the test Redis; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RL_COMMONS_")}
    env.update(RL_COMMONS_REDIS_URL=services.redis_url, RL_COMMONS_KEY_PREFIX=key_prefix)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([RLC, *argv], env=env, capture_output=True, text=True, timeout=60)

    return run


ARMS = ["--arms", "gpt-4,mini,llama", "--features", "2", "--baseline-arm", "gpt-4"]


def test_create_with_each_objective(rlc, redis_store):
    proc = rlc("policy", "create", "floor", *ARMS, "--objective", "quality-floor",
               "--quality-margin", "0.01")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(
        "quality floor: minimise cost while mean quality ≥ gpt-4's quality − 0.01"
    )
    obj = redis_store.get_config("floor").objective
    assert (obj.kind, obj.quality_margin) == ("quality_floor", 0.01)

    proc = rlc("policy", "create", "abs", *ARMS, "--quality-floor", "0.85")
    assert proc.returncode == 0, proc.stderr
    assert redis_store.get_config("abs").objective.quality_floor == 0.85

    proc = rlc("policy", "create", "budget", *ARMS, "--cost-cap", "0.05", "--objective", "budget",
               "--max-cost", "0.004", "--latency-weight", "0.1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cfg = redis_store.get_config("budget")
    assert cfg.reward.cost_cap == 0.05
    assert (cfg.objective.kind, cfg.objective.max_cost, cfg.objective.latency_weight) == (
        "budget", 0.004, 0.1,
    )  # fmt: skip
    assert "mean cost ≤ $0.0040 per request" in proc.stdout

    listed = rlc("policy", "list").stdout.splitlines()
    assert listed[0].split()[-2:] == ["OBJECTIVE", "ARMS"]
    assert [ln.split()[-2] for ln in listed[1:]] == ["quality-floor", "budget", "quality-floor"]
    assert "dollars when the policy has a cost cap" in " ".join(
        rlc("policy", "create", "--help").stdout.split()
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--objective", "budget"], "--objective budget needs --max-cost X"),
        (["--objective", "quality-floor"], "needs --quality-margin M"),
        (["--quality-margin", "0.01", "--quality-floor", "0.8"], "not both"),
        (["--objective", "weighted", "--max-cost", "0.1"], "--max-cost does not apply"),
        (["--latency-weight", "0.2"], "--latency-weight belongs to a constrained objective"),
        (["--quality-margin", "1.5"], "objective.quality_margin: Input should be less than 1"),
        (["--cost-cap", "0.05", "--max-cost", "0.06"], "is not below reward.cost_cap 0.05"),
        (["--max-cost", "2"], "is not below 1, the largest cost without reward.cost_cap"),
    ],
)
def test_create_refuses_a_bad_objective_in_one_line(rlc, redis_store, argv, expected):
    proc = rlc("policy", "create", "bad", *ARMS, *argv)
    assert proc.returncode == 1 and proc.stdout == ""
    assert expected in one_error_line(proc)
    assert redis_store.list_policies() == []


def test_a_margin_needs_a_baseline_arm(rlc, redis_store):
    proc = rlc("policy", "create", "nob", "--arms", "a,b", "--features", "2",
               "--quality-margin", "0.01")  # fmt: skip
    assert proc.returncode == 1
    assert "set baseline_arm" in one_error_line(proc)


def test_objective_verb_shows_changes_and_refuses(rlc, redis_store):
    assert rlc("policy", "create", "p", *ARMS, "--cost-cap", "0.05").returncode == 0
    proc = rlc("objective", "p")
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        "policy 'p': weighted reward 0.5·quality + 0.3·(1 − cost) + 0.2·(1 − latency)"
    )
    proc = rlc("objective", "p", "--quality-margin", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "policy 'p': weighted reward 0.5·quality + 0.3·(1 − cost) + 0.2·(1 − latency) → "
        "quality floor: minimise cost while mean quality ≥ gpt-4's quality − 0.01"
    )
    assert redis_store.get_config("p").objective.quality_margin == 0.01
    # only the latency weight: the floor stays
    proc = rlc("objective", "p", "--latency-weight", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("→ quality floor: minimise cost + 0.2·latency while mean "
                                        "quality ≥ gpt-4's quality − 0.01")  # fmt: skip
    redis_store.apply("p", [Observation("d0", "gpt-4", (1.0, 0.5), 0.7,
                                        components=(0.9, 0.6, 0.1, 0.0, 1.0))],
                      dual_delta=2.5)  # fmt: skip
    # a new margin keeps the multiplier (same kind: it adapts)
    proc = rlc("objective", "p", "--quality-margin", "0.02")
    assert proc.returncode == 0 and "reset" not in proc.stdout
    assert redis_store.read_state("p").dual == 2.5
    # a change of kind resets it: a floor's λ means nothing to a budget
    proc = rlc("objective", "p", "--budget", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert "→ budget: maximise quality while mean cost ≤ $0.0100 per request" in proc.stdout
    assert "multiplier λ reset to 0 (was 2.5)" in proc.stdout
    state = redis_store.read_state("p")
    assert state.dual == 0.0 and state.arms["gpt-4"].n == 1.0  # the statistics stay
    assert (
        rlc("objective", "p", "--budget", "0.01")
        .stdout.strip()
        .startswith("policy 'p': objective unchanged (budget:")
    )
    # --reset-multiplier alone: λ to 0, the objective as it was
    redis_store.apply("p", [], dual_delta=0.4)
    proc = rlc("objective", "p", "--reset-multiplier")
    assert proc.returncode == 0 and "multiplier λ reset to 0 (was 0.4)" in proc.stdout
    assert redis_store.read_state("p").dual == 0.0
    assert redis_store.get_config("p").objective.max_cost == 0.01
    for argv, expected in (
        (["--budget", "0.06"], "is not below reward.cost_cap 0.05"),
        (["--quality-floor", "1.2"], "objective.quality_floor: Input should be less than or equal"),
        (["--weighted", "--latency-weight", "0.1"], "does not apply to the weighted objective"),
    ):
        proc = rlc("objective", "p", *argv)
        assert proc.returncode == 1, argv
        assert expected in one_error_line(proc)
    assert redis_store.get_config("p").objective.max_cost == 0.01  # unchanged by the refusals
    proc = rlc("objective", "p", "--weighted")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("→ weighted reward 0.5·quality "
                                                                 "+ 0.3·(1 − cost) + 0.2·(1 − "
                                                                 "latency)")  # fmt: skip
    proc = rlc("objective", "p", "--budget", "0.01", "--quality-floor", "0.8")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
    proc = rlc("objective", "ghost", "--weighted")
    assert proc.returncode == 1 and "no policy named 'ghost'" in one_error_line(proc)


def test_the_workers_aggregates_record_the_multiplier_per_minute(redis_store):
    redis_store.create(
        make_config(
            name="lam", arms=["gpt-4", "mini", "llama"], n_features=2, baseline_arm="gpt-4",
            reward={"cost_cap": 0.05}, objective={"kind": "budget", "max_cost": 0.01},
        )
    )  # fmt: skip
    run_loop(redis_store, "lam", minutes=4)
    buckets = read_buckets(redis_store.client, redis_store.keys("lam"), 6)
    duals = [b.dual for b in buckets]
    assert duals[:2] == [None, None]  # no batch in those minutes
    assert duals[2:] == pytest.approx([0.002, 0.006, 0.012, 0.020])  # λ after each minute
    assert redis_store.read_state("lam").dual == pytest.approx(0.020)
    # a weighted policy never writes λ
    redis_store.create(make_config(
        name="w", arms=["gpt-4", "mini", "llama"], n_features=2))  # fmt: skip
    run_loop(redis_store, "w", minutes=1, dual_step=0.0)
    assert [b.dual for b in read_buckets(redis_store.client, redis_store.keys("w"), 2)] == [
        None, None,
    ]  # fmt: skip


def test_inspect_and_report_show_the_constraint(rlc, redis_store):
    assert rlc("policy", "create", "route", *ARMS, "--cost-cap", "0.05", "--max-cost",
               "0.02").returncode == 0  # fmt: skip
    redis_store.update_config("route", rollout_fraction=0.5)  # the loop's split
    run_loop(redis_store, "route")
    proc = rlc("inspect", "route", "--no-kafka")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "objective  budget: maximise quality while mean cost ≤ $0.0200 per request" in out
    lines = out.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("constraint ("))
    assert lines[k + 1].startswith("  budget $0.0200, enforced at $0.01")
    assert lines[k + 2].startswith("  measured mean cost $0.01")
    # every observation: half gpt-4 at $0.03, half mini/llama at ~$0.005 → ~$0.0177 ± 0.0003
    assert lines[k + 2].endswith("(95% interval, n 1000) → HELD")
    assert lines[k + 3] == "  multiplier λ 0.03"

    data = json.loads(rlc("inspect", "route", "--no-kafka", "--json").stdout)
    c = data["constraint"]
    assert c["verdict"] == "held" and c["n"] == 1000 and c["dual"] == pytest.approx(0.03)
    assert c["low"] < c["measured"] < c["high"] < c["target"] == pytest.approx(0.4)

    proc = rlc("report", "route", "--source", "redis", "--minutes", "30")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "objective: budget: maximise quality while mean cost ≤ $0.0200 per request" in text
    assert "learned cohort's mean cost per request: $0.00" in text  # ~$0.0055
    assert "must stay ≤ $0.0200 → HELD" in text

    # the same policy under a quality floor relative to gpt-4: the learned cohort (mini at
    # 0.87, llama 0.70) is 4-5 points under gpt-4's 0.90, far beyond a 1-point margin
    assert rlc("objective", "route", "--quality-margin", "0.01").returncode == 0
    data = json.loads(rlc("report", "route", "--source", "redis", "--json").stdout)
    assert data["margin"] == 0.01  # the objective's margin by default
    assert data["constraint"]["verdict"] == "violated"
    assert data["constraint"]["target"] == -0.01
    assert data["quality_non_inferior"] is False
    data = json.loads(rlc("inspect", "route", "--no-kafka", "--json").stdout)
    assert data["constraint"]["kind"] == "quality_floor"
    assert data["constraint"]["verdict"] == "violated"  # all cohorts: ~0.875 < 0.90 − 0.01
