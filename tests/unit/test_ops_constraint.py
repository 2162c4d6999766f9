"""What inspect, the dashboard and the report say about a constrained policy (pure parts):
the verdict rule, the objective's one-line description, the constraint view over a learned
state (numbers from ``policy_store.constraint_status``), the report's constraint section,
and the CLI's objective options."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_report import two_cohorts

from policy_store import (
    ConfigError,
    InMemoryPolicyStore,
    Observation,
    build_snapshot,
    component_values,
    constraint_status,
    make_algorithm,
    make_config,
)
from stream_app.aggregates import Bucket
from stream_app.ops import build_policy_report
from stream_app.ops._constraint import constraint_view, describe_objective, verdict
from stream_app.ops.cli._objective import objective_fields, one_line
from stream_app.ops.report import build_report, check_constraint, with_constraint


@pytest.mark.parametrize(
    "kind, target, low, high, expected",
    [
        ("quality_floor", 0.85, 0.851, 0.9, "held"),
        ("quality_floor", 0.85, 0.80, 0.849, "violated"),
        ("quality_floor", 0.85, 0.84, 0.86, "not enough data"),
        ("budget", 0.2, 0.1, 0.199, "held"),
        ("budget", 0.2, 0.201, 0.3, "violated"),
        ("budget", 0.2, 0.19, 0.21, "not enough data"),
        ("budget", 0.2, math.nan, math.nan, "not enough data"),
        ("quality_floor", math.nan, 0.8, 0.9, "not enough data"),
    ],
)
def test_verdict_reads_the_interval_against_the_target(kind, target, low, high, expected):
    assert verdict(kind, target, low, high) == expected


def config(objective, **kw):
    return make_config(
        name="p", arms=["gpt-4", "mini"], n_features=2, baseline_arm="gpt-4",
        reward={"cost_cap": 0.05}, objective=objective, **kw,
    )  # fmt: skip


def test_describe_objective_says_goal_constraint_and_units():
    assert describe_objective(config({"kind": "quality_floor", "quality_margin": 0.01})) == (
        "quality floor: minimise cost while mean quality ≥ gpt-4's quality − 0.01"
    )
    floor = config({"kind": "quality_floor", "quality_floor": 0.85, "latency_weight": 0.1})
    assert describe_objective(floor) == (
        "quality floor: minimise cost + 0.1·latency while mean quality ≥ 0.85"
    )
    assert describe_objective(config({"kind": "budget", "max_cost": 0.004})) == (
        "budget: maximise quality while mean cost ≤ $0.0040 per request"
    )
    no_cap = make_config(name="p", arms=["a"], n_features=1,
                         objective={"kind": "budget", "max_cost": 0.3})  # fmt: skip
    assert describe_objective(no_cap).endswith("≤ 0.300 per request (normalised cost)")


def learn(store, cfg, n=600, seed=0, dual_delta=0.0):
    """Half the traffic on each arm: gpt-4 quality 0.90 at $0.03, mini 0.84 at $0.005."""
    rng = np.random.default_rng(seed)
    obs = []
    for i in range(n):
        arm = "gpt-4" if i % 2 else "mini"
        q = float(np.clip(rng.normal(0.90 if arm == "gpt-4" else 0.84, 0.05), 0, 1))
        c = 0.03 if arm == "gpt-4" else 0.005
        v = component_values(cfg.reward, q, c, 200.0, False)
        obs.append(Observation(f"d{seed}-{i}", arm, (1.0, float(rng.random())),
                               cfg.reward.reward(q, c, 200.0), components=v))  # fmt: skip
    store.apply(cfg.name, obs, dual_delta=dual_delta)
    return store.read_state(cfg.name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constraint_view_takes_its_numbers_from_constraint_status(seed):
    store = InMemoryPolicyStore()
    # every request learned: the interval is that of every observation (with a rollout
    # split the buffer is sized for the report's cohorts, see cohort_samples)
    cfg = store.create(
        config({"kind": "quality_floor", "quality_margin": 0.01}, rollout_fraction=1.0)
    )
    empty = constraint_view(cfg, store.read_state("p"))
    assert empty.verdict == "not enough data" and empty.n == 0 and math.isnan(empty.low)
    state = learn(store, cfg, seed=seed, dual_delta=1.5)
    view = constraint_view(cfg, state)
    status = constraint_status(cfg, build_snapshot(make_algorithm(cfg.algorithm), cfg, state))
    assert (view.target, view.buffer, view.bound) == (status.target, status.buffer, status.bound)
    assert (view.measured, view.n, view.dual) == (status.measured, status.n, 1.5)
    # the mean quality (0.87) is far under gpt-4's 0.90 − 0.01, with 600 observations
    assert view.low < view.measured < view.high and view.high < view.target
    assert view.verdict == "violated"
    # the 95% two-sided interval is wider than the one-sided 95% buffer
    assert view.high - view.measured > view.buffer


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_budget_view_holds_and_shows_dollars(seed):
    store = InMemoryPolicyStore()
    cfg = store.create(config({"kind": "budget", "max_cost": 0.02}))
    view = constraint_view(cfg, learn(store, cfg, seed=seed))
    assert view.component == "cost" and view.unit == "$" and view.scale == 0.05
    assert view.measured == pytest.approx(0.0175 / 0.05)  # mean cost $0.0175 per request
    assert view.verdict == "held"  # [0.0163, 0.0187] dollars, all under 0.02
    text = "\n".join(view.lines())
    assert "budget $0.0200" in text and "measured mean cost $0.0175 ±" in text
    assert "HELD" in text and "multiplier λ 0" in text


def test_policy_report_carries_objective_constraint_and_dual_series():
    store = InMemoryPolicyStore()
    cfg = store.create(config({"kind": "quality_floor", "quality_floor": 0.8}))
    state = learn(store, cfg, dual_delta=0.25)
    buckets = [Bucket(minute=100), Bucket(minute=101, dual=0.25)]
    rep = build_policy_report(cfg, state, buckets, {}, {}, now=6100.0, with_series=True)
    assert rep.objective.startswith("quality floor: minimise cost")
    assert rep.constraint.verdict == "held" and rep.constraint.dual == 0.25
    assert rep.series["dual"] == [None, 0.25]
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["constraint"]["kind"] == "quality_floor"
    weighted = store.create(make_config(name="w", arms=["a", "b"], n_features=2))
    rep = build_policy_report(weighted, store.read_state("w"), [], {}, {}, now=0.0)
    assert rep.constraint is None and rep.objective.startswith("weighted reward 0.5·quality")


def test_report_constraint_uses_the_reports_intervals():
    events = two_cohorts(400, q_rl=0.80, q_base=0.80, c_rl=0.30, c_base=0.50)
    rep = build_report(events, margin=0.01)
    margin = check_constraint(rep, config({"kind": "quality_floor", "quality_margin": 0.01}))
    assert margin.measured == rep.quality_difference and margin.target == -0.01
    assert margin.verdict == "held" and rep.quality_non_inferior is True
    tight = check_constraint(rep, config({"kind": "quality_floor", "quality_margin": 0.001}))
    assert tight.verdict == "not enough data"  # 0 ± 0.007 straddles −0.001
    floor = check_constraint(rep, config({"kind": "quality_floor", "quality_floor": 0.81}))
    assert floor.measured == rep.metrics["quality"].rl_mean and floor.verdict == "violated"
    # normalised mean cost 0.30 of the learned cohort = $0.015 with cost_cap $0.05
    budget = with_constraint(rep, config({"kind": "budget", "max_cost": 0.016})).constraint
    assert budget.target == pytest.approx(0.32) and budget.verdict == "held"
    over = check_constraint(rep, config({"kind": "budget", "max_cost": 0.014}))
    assert over.verdict == "violated"
    text = with_constraint(rep, config({"kind": "budget", "max_cost": 0.016})).to_text()
    assert "objective: budget: maximise quality while mean cost ≤ $0.0160 per request" in text
    assert "learned cohort's mean cost per request: $0.0150 [$0.01" in text
    assert "must stay ≤ $0.0160 → HELD" in text
    data = json.loads(json.dumps(with_constraint(rep, config({"kind": "budget", "max_cost": 0.016}))
                                 .to_dict(), allow_nan=False))  # fmt: skip
    assert data["constraint"]["verdict"] == "held"
    assert check_constraint(rep, make_config(name="w", arms=["a"], n_features=1)) is None
    assert rep.to_dict()["constraint"] is None


def test_objective_options_become_fields_or_one_line_errors():
    assert objective_fields(None, None, None, None, None) is None
    assert objective_fields(None, None, None, 0.01, None) == {"kind": "budget", "max_cost": 0.01}
    assert objective_fields("quality-floor", 0.01, None, None, 0.1) == {
        "kind": "quality_floor", "quality_margin": 0.01, "latency_weight": 0.1,
    }  # fmt: skip
    assert objective_fields("weighted", None, None, None, None) == {"kind": "weighted"}
    for args, expected in (
        (("budget", None, None, None, None), "--objective budget needs --max-cost"),
        (("quality-floor", None, None, None, None), "needs --quality-margin M"),
        ((None, 0.01, 0.8, None, None), "not both"),
        (("budget", 0.01, None, 0.1, None), "--quality-margin does not apply"),
        ((None, None, None, None, 0.2), "--latency-weight belongs to a constrained objective"),
    ):
        with pytest.raises(ConfigError, match=expected):
            objective_fields(*args)
    with pytest.raises(ConfigError) as exc:
        make_config(name="p", arms=["a"], n_features=0, rollout_fraction=3)
    line = one_line(exc.value)
    assert "\n" not in line and line.startswith("invalid policy config: ") and "; " in line
