"""Known answers for the cohort report built from RewardEvents."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import stream_app.ops.report as evaluation
from producers import RewardComponents, RewardEvent
from stream_app.aggregates import Bucket, CohortArmStats
from stream_app.ops.report import build_report, build_report_from_aggregates


def reward(i, cohort, arm, quality, cost, latency=0.3, *, error=False, defaulted=(), policy="p"):
    r = 0.0 if error else 0.5 * quality + 0.3 * (1 - cost) + 0.2 * (1 - latency)
    return RewardEvent(
        decision_id=f"{cohort}-{i}",
        policy=policy,
        policy_version=1,
        arm=arm,
        features=(1.0, 0.0),
        reward=r,
        components=RewardComponents(
            quality=None if error else quality,
            cost=cost,
            latency=latency,
            error=error,
            defaulted=defaulted,
        ),
        propensity=0.9,
        cohort=cohort,
        decision_ts=1000.0 + i,
        reward_ts=1001.0 + i,
    )


def two_cohorts(n, q_rl, q_base, c_rl, c_base, sd=0.05, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for cohort, q, c, arm in (("rl", q_rl, c_rl, "cheap"), ("baseline", q_base, c_base, "gpt-4")):
        # exact means: symmetric ± sd pairs
        dev = rng.choice([-sd, sd], n // 2)
        qs = np.concatenate([q + dev, q - dev])
        cs = np.concatenate([c - dev, c + dev])
        out += [reward(i, cohort, arm, float(qs[i]), float(cs[i])) for i in range(n)]
    return out


def test_means_differences_and_cost_reduction_known_answer():
    events = two_cohorts(400, q_rl=0.80, q_base=0.80, c_rl=0.30, c_base=0.50)
    rep = build_report(events, margin=0.01)
    q, c = rep.metrics["quality"], rep.metrics["cost"]
    assert rep.counts == {"rl": 400, "baseline": 400, "shadow": 0}
    assert q.rl.mean == pytest.approx(0.80) and q.baseline.mean == pytest.approx(0.80)
    assert c.difference.estimate == pytest.approx(-0.20)
    assert rep.cost_reduction.estimate == pytest.approx(0.40)  # 1 − 0.3/0.5
    assert rep.cost_reduction.low < 0.40 < rep.cost_reduction.high
    # sd exactly 0.05 in both: se of the difference = sqrt(2·0.05²·400/399/400)
    se = math.sqrt(2 * 0.05**2 / 399)
    assert q.difference.half_width == pytest.approx(1.963 * se, rel=2e-3)
    assert rep.quality_non_inferior is True  # lower bound ≈ −0.007 > −0.01
    expected_reward = 0.5 * 0.8 + 0.3 * 0.7 + 0.2 * 0.7 - (0.5 * 0.8 + 0.3 * 0.5 + 0.2 * 0.7)
    assert rep.metrics["reward"].difference.estimate == pytest.approx(expected_reward)
    assert rep.arm_share == {"rl": {"cheap": 1.0}, "baseline": {"gpt-4": 1.0}}


def test_quality_loss_beyond_the_margin_fails_and_a_wider_margin_passes():
    events = two_cohorts(400, q_rl=0.78, q_base=0.80, c_rl=0.30, c_base=0.50)
    assert build_report(events, margin=0.01).quality_non_inferior is False
    assert build_report(events, margin=0.03).quality_non_inferior is True
    text = build_report(events, margin=0.01).to_text()
    assert "FAIL" in text and "cost reduction: 40.0%" in text


def test_small_loss_inside_margin_but_uncertain_fails():
    # mean loss 0.005 is inside the margin, but with 20 noisy rewards the interval is too wide
    events = two_cohorts(20, q_rl=0.795, q_base=0.80, c_rl=0.3, c_base=0.5, sd=0.2)
    rep = build_report(events, margin=0.01)
    assert rep.quality_difference.estimate == pytest.approx(-0.005)
    assert rep.quality_non_inferior is False
    assert any("fewer than 30" in n for n in rep.notes)


def test_defaulted_and_error_components_are_not_measurements():
    events = two_cohorts(100, 0.8, 0.8, 0.3, 0.5)
    events += [reward(1000 + i, "rl", "cheap", 0.5, 0.3, defaulted=("quality",)) for i in range(50)]
    events += [reward(2000 + i, "rl", "cheap", 0.0, 0.3, error=True) for i in range(25)]
    rep = build_report(events)
    assert rep.metrics["quality"].rl.n == 100  # defaulted and errored qualities left out
    assert rep.metrics["quality"].rl.mean == pytest.approx(0.8)
    assert rep.metrics["cost"].rl.n == 175
    assert rep.errors.rl.mean == pytest.approx(25 / 175)
    assert rep.errors.baseline.mean == 0.0


def test_shadow_and_other_policies_are_not_compared():
    events = two_cohorts(100, 0.8, 0.8, 0.3, 0.5)
    events += [reward(i, "shadow", "gpt-4", 0.1, 0.9) for i in range(10)]
    events += [reward(5000 + i, "rl", "cheap", 0.0, 1.0, policy="other") for i in range(10)]
    rep = build_report(events, policy="p")
    assert rep.counts == {"rl": 100, "baseline": 100, "shadow": 10}
    assert rep.metrics["quality"].rl.mean == pytest.approx(0.8)


def test_missing_cohort_is_explained_and_json_is_valid():
    events = [e for e in two_cohorts(50, 0.8, 0.8, 0.3, 0.5) if e.cohort == "rl"]
    rep = build_report(events)
    assert rep.quality_non_inferior is None
    assert any("rollout_fraction below 1" in n for n in rep.notes)
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["quality_non_inferior"] is None
    assert data["metrics"]["cost"]["baseline"]["n"] == 0
    assert "UNDECIDED" in rep.to_text()


def test_no_rewards_at_all_is_explained():
    rep = build_report([], policy="p")
    assert rep.quality_non_inferior is None
    assert any("check the policy name" in n for n in rep.notes)
    json.dumps(rep.to_dict(), allow_nan=False)


def test_dicts_are_accepted_like_events():
    events = two_cohorts(60, 0.8, 0.7, 0.3, 0.5)
    a = build_report(events).to_dict()
    b = build_report([e.model_dump() for e in events]).to_dict()
    assert a == b


@pytest.mark.parametrize("build", [build_report, build_report_from_aggregates])
def test_bad_margin_and_level_are_refused_by_both_builders(build):
    with pytest.raises(ValueError, match="margin"):
        build([], margin=-0.1)
    with pytest.raises(ValueError, match="level"):
        build([], level=1.0)


def test_report_json_has_no_nan():
    # no rewards: every estimate and interval is undefined, and must be null in JSON
    data = build_report([]).to_dict()
    json.dumps(data, allow_nan=False)
    assert data["metrics"]["reward"]["difference"]["low"] is None
    assert data["cost_reduction"]["estimate"] is None


def test_report_from_aggregates_has_the_same_means_and_wider_intervals():
    events = two_cohorts(400, 0.80, 0.80, 0.30, 0.50)
    bucket = Bucket(minute=0)
    for e in events:
        cell = bucket.cells.setdefault((e.cohort, e.arm), CohortArmStats())
        cell.n += 1
        cell.reward += e.reward
        cell.quality += e.components.quality
        cell.cost += e.components.cost
        cell.latency += e.components.latency
    agg = build_report_from_aggregates([bucket])
    exact = build_report(events)
    for m in ("reward", "quality", "cost"):
        assert agg.metrics[m].difference.estimate == pytest.approx(
            exact.metrics[m].difference.estimate
        )
        assert agg.metrics[m].difference.half_width > exact.metrics[m].difference.half_width
    assert agg.cost_reduction.estimate == pytest.approx(0.40)
    assert agg.counts["rl"] == 400
    assert any("conservative" in n for n in agg.notes)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = build_report(two_cohorts(60, 0.8, 0.79, 0.3, 0.5)).plot(str(tmp_path / "r.png"))
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_public_names():
    for name in evaluation.__all__:
        assert hasattr(evaluation, name), name
    assert sorted(evaluation.__all__) == evaluation.__all__
