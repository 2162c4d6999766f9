"""The demo's pure parts: rollout ladder, change detection, learning curve, progress line."""

from __future__ import annotations

import io

import numpy as np
import pytest

from stream_app.dev.demo import (
    ChangeWatch,
    CurvePoint,
    PriorityRule,
    RolloutController,
    demo_policy_config,
    rolling_by_cohort,
    rolling_mean,
)
from stream_app.dev.demo._progress import Progress, format_line


def _rewards(rng, mean, n, sd=0.08):
    return list(np.clip(rng.normal(mean, sd, n), 0, 1))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rollout_steps_up_when_the_learned_cohort_is_better(seed):
    rng = np.random.default_rng(seed)
    ctl = RolloutController()
    fractions = [ctl.fraction]
    for _ in range(6):
        ctl.decide(_rewards(rng, 0.88, 60), _rewards(rng, 0.83, 300))
        fractions.append(ctl.fraction)
    assert fractions[0] == 0.1
    assert fractions[-1] == 0.9  # top of the ladder: a 10% holdout keeps measuring
    assert fractions == sorted(fractions)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rollout_holds_or_steps_back_when_the_learned_cohort_is_worse(seed):
    rng = np.random.default_rng(seed)
    ctl = RolloutController(index=2)
    d = ctl.decide(_rewards(rng, 0.75, 200), _rewards(rng, 0.83, 200))
    assert d.action == "down" and ctl.fraction == 0.25
    assert d.high < -ctl.margin
    # equal cohorts with little data: not proven, hold
    ctl2 = RolloutController()
    d2 = ctl2.decide(_rewards(rng, 0.83, 20, sd=0.3), _rewards(rng, 0.83, 20, sd=0.3))
    assert d2.action == "hold" and ctl2.fraction == 0.1


def test_rollout_waits_for_enough_rewards_and_validates_steps():
    ctl = RolloutController(min_samples=20)
    assert ctl.decide([0.9] * 5, [0.1] * 100).action == "hold"
    with pytest.raises(ValueError, match="increasing"):
        RolloutController(steps=(0.5, 0.1))
    with pytest.raises(ValueError, match="increasing"):
        RolloutController(steps=(0.0, 0.5))


def test_change_watch_detects_only_when_every_affected_task_moved():
    w = ChangeWatch.start(
        100,
        5.0,
        greedy={"classify": "llama", "chat": "llama", "code": "gpt-4"},
        new_best={"classify": "claude-3", "chat": "claude-3", "code": "gpt-4"},
    )
    assert set(w.affected) == {"classify", "chat"}
    # only moves caused by the changed provider count
    w2 = ChangeWatch.start(
        0,
        0.0,
        greedy={"classify": "llama", "code": "claude-3"},
        new_best={"classify": "claude-3", "code": "gpt-4"},
        provider="llama",
    )
    assert set(w2.affected) == {"classify"}
    assert w.observe(120, 6.0, {"classify": "claude-3", "chat": "llama"}) is None
    assert w.observe(150, 7.5, {"classify": "claude-3", "chat": "claude-3"}) == (50, 2.5)
    assert "adapted after 50 requests" in w.describe()
    # nothing to detect when the best providers did not change
    same = ChangeWatch.start(0, 0.0, {"code": "gpt-4"}, {"code": "gpt-4"})
    assert same.observe(10, 1.0, {"code": "gpt-4"}) is None
    assert "did not need to move" in same.describe()


def test_rolling_mean_and_curve_by_cohort():
    assert rolling_mean([], 3).size == 0
    np.testing.assert_allclose(rolling_mean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    pts = [CurvePoint(i, "rl" if i % 2 else "baseline", float(i % 2)) for i in range(10)]
    curves = rolling_by_cohort(pts, window=3)
    assert set(curves) == {"rl", "baseline"}
    xs, ys = curves["rl"]
    assert xs.tolist() == [1, 3, 5, 7, 9] and ys.tolist() == [1.0] * 5


def test_learning_curve_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from stream_app.dev.demo import plot_learning_curve

    pts = [CurvePoint(i, "rl" if i % 3 else "baseline", 0.8 + 0.001 * i) for i in range(60)]
    path = plot_learning_curve(
        str(tmp_path / "c.png"),
        pts,
        oracle=[(i, 0.9) for i in range(60)],
        rollout=[(0, 0.1), (30, 0.25)],
        change_at=40,
        detected_at=50,
        window=10,
    )
    data = (tmp_path / "c.png").read_bytes()
    assert path.endswith("c.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_progress_line_on_a_pipe_and_on_a_terminal():
    assert format_line(3, 4, {"rollout": "25%"}).endswith("| rollout 25%")
    pipe = io.StringIO()
    p = Progress(10, pipe, every=0.0)
    p.update(5, {"a": "1"})
    p.message("step")
    p.close()
    assert pipe.getvalue().splitlines() == [format_line(5, 10, {"a": "1"}), "step"]

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = Progress(10, tty)
    p.update(5, {"a": "1"}, force=True)
    p.close()
    assert tty.getvalue().startswith("\r[") and tty.getvalue().endswith("\n")


def test_baseline_rule_and_demo_policy():
    rule = PriorityRule()
    assert rule.select_provider({"priority": "speed"}) == "llama"
    assert rule.select_provider({"priority": "quality"}) == "gpt-4"
    cfg = demo_policy_config("p", ["gpt-4", "claude-3", "llama"], 0.1)
    assert cfg.rollout_fraction == 0.1 and cfg.baseline_arm == "gpt-4"
    assert cfg.reward.cost_cap and cfg.reward.latency_cap_ms


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"requests": 0}, "--requests"),
        ({"duration": 0}, "--duration"),
        ({"baseline": "gpt-5"}, "--baseline"),
        ({"change": "meteor"}, "--change"),
        ({"objective": "cheapest"}, "--objective"),
        ({"objective": "budget"}, "--max-cost"),
        ({"objective": "budget", "max_cost": 0.1}, "cost cap"),
        ({"objective": "quality-floor", "max_cost": 0.01}, "--max-cost belongs"),
        ({"objective": "quality-floor", "quality_margin": 1.0}, "--quality-margin"),
    ],
)
def test_demo_options_refuse_bad_values_with_the_option_to_fix(changes, message):
    from stream_app.dev.demo import DemoOptions

    DemoOptions().validate()
    with pytest.raises(ValueError, match=message):
        DemoOptions(**changes).validate()


def test_cli_demo_refuses_bad_options_without_starting_anything(capsys):
    from stream_app.ops.cli import main

    assert main(["demo", "--baseline", "gpt-5"]) == 2
    assert "--baseline must be" in capsys.readouterr().err


def test_a_constrained_objective_runs_on_the_premium_world_against_always_gpt4():
    from policy_store import Objective
    from stream_app.dev.demo import CONSTRAINED_ROLLOUT, DemoOptions
    from stream_app.dev.simulated import DEFAULT_PROFILES, PREMIUM_PROFILES

    weighted = DemoOptions()
    assert weighted.profiles() is DEFAULT_PROFILES and weighted.baseline_name == "priority"
    assert weighted.world_change == "llama-worse" and len(weighted.ladder) > 1
    assert weighted.policy_objective() == Objective() and weighted.report_margin == 0.01

    floor = DemoOptions(objective="quality-floor", quality_margin=0.02)
    floor.validate()
    assert floor.profiles() is PREMIUM_PROFILES and floor.baseline_name == "gpt-4"
    assert floor.world_change == "none" and floor.ladder == (0.5,)
    assert floor.ladder == (CONSTRAINED_ROLLOUT["quality-floor"],)
    assert floor.report_margin == 0.02
    assert floor.policy_objective() == Objective(kind="quality_floor", quality_margin=0.02)
    # an explicit change or baseline provider is kept
    chosen = DemoOptions(objective="budget", max_cost=0.01, change="llama-worse", baseline="llama")
    chosen.validate()
    assert chosen.world_change == "llama-worse" and chosen.baseline_name == "llama"
    assert chosen.policy_objective() == Objective(kind="budget", max_cost=0.01)
    assert chosen.report_margin == 0.01
    assert chosen.ladder == (CONSTRAINED_ROLLOUT["budget"],) == (0.9,)


def test_a_constrained_report_leaves_out_the_warmup_and_a_weighted_one_nothing():
    from stream_app.dev.demo import CONSTRAINED_WARMUP, DemoOptions

    assert DemoOptions().report_from == 0
    assert DemoOptions(objective="quality-floor").report_from == CONSTRAINED_WARMUP == 500
    # a short run leaves out a sixth of it; an explicit warm-up is kept
    assert DemoOptions(objective="budget", max_cost=0.01, requests=300).report_from == 50
    assert DemoOptions(objective="quality-floor", warmup=0).report_from == 0
    assert DemoOptions(warmup=200).report_from == 200
    for bad in (-1, 3000):
        with pytest.raises(ValueError, match="--warmup"):
            DemoOptions(warmup=bad).validate()


def test_demo_policy_with_an_objective_measures_against_the_baseline_arm():
    from policy_store import Objective

    arms = ["gpt-4", "claude-3", "llama"]
    floor = Objective(kind="quality_floor", quality_margin=0.01)
    cfg = demo_policy_config("p", arms, 0.9, floor)
    assert cfg.objective == floor and cfg.baseline_arm == "gpt-4" and cfg.rollout_fraction == 0.9
    # no uniform exploration under a constraint; the weighted demo keeps its ε
    assert cfg.algorithm.epsilon == 0.0
    assert demo_policy_config("p", arms, 0.1).algorithm.epsilon == 0.02
    budget = demo_policy_config("p", arms, 0.9, Objective(kind="budget", max_cost=0.01), "llama")
    assert budget.objective.max_cost == 0.01 and budget.baseline_arm == "llama"


def test_premium_world_gpt4_is_best_everywhere_and_dearest_but_cheap_models_match_it_somewhere():
    from stream_app.dev.simulated import PREMIUM_PROFILES, TASK_TOKENS, TASK_TYPES, WORLDS

    assert WORLDS["premium"] is PREMIUM_PROFILES
    gpt4 = PREMIUM_PROFILES["gpt-4"]
    for task in TASK_TYPES:
        tin, tout = TASK_TOKENS[task]
        others = [p for name, p in PREMIUM_PROFILES.items() if name != "gpt-4"]
        assert all(gpt4.mean_quality(task) >= p.mean_quality(task) for p in others)
        assert all(gpt4.cost(tin, tout) > 3 * p.cost(tin, tout) for p in others)
    # what makes a quality floor worth having: a cheaper model is as good on some task types,
    # clearly worse on others (code)
    close = {
        t
        for t in TASK_TYPES
        for name, p in PREMIUM_PROFILES.items()
        if name != "gpt-4" and gpt4.mean_quality(t) - p.mean_quality(t) <= 0.01
    }
    assert {"chat", "classify"} <= close and "code" not in close


def test_cli_demo_objective_options_reach_the_demo_options(monkeypatch):
    from stream_app.dev import demo
    from stream_app.ops.cli import main

    seen = {}

    def fake_run_demo(opts):
        seen["opts"] = opts
        return type("R", (), {"requests": 1})()

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "--objective", "budget", "--max-cost", "0.02"]) == 0
    opts = seen["opts"]
    assert (opts.objective, opts.max_cost, opts.change) == ("budget", 0.02, None)
    assert main(["demo", "--objective", "quality-floor", "--quality-margin", "0.02"]) == 0
    assert (seen["opts"].objective, seen["opts"].quality_margin) == ("quality-floor", 0.02)
    assert seen["opts"].warmup is None
    assert main(["demo", "--objective", "quality-floor", "--warmup", "0"]) == 0
    assert seen["opts"].warmup == 0 and seen["opts"].report_from == 0


@pytest.mark.parametrize(
    ("argv", "size"),
    [
        ([], (3000, 75.0)),
        (["--objective", "quality-floor"], (6000, 100.0)),
        (["--objective", "budget", "--max-cost", "0.01"], (6000, 100.0)),
        (["--objective", "quality-floor", "--requests", "900", "--duration", "9"], (900, 9.0)),
    ],
)
def test_a_constrained_demo_is_longer_by_default_unless_told(monkeypatch, argv, size):
    from types import SimpleNamespace

    import stream_app.dev.demo as demo
    from stream_app.ops.cli import main

    seen = []
    monkeypatch.setattr(
        demo, "run_demo", lambda opts: seen.append(opts) or SimpleNamespace(requests=1)
    )
    assert main(["demo", "--no-plot", "--no-dashboard", *argv]) == 0
    assert (seen[0].requests, seen[0].duration) == size
