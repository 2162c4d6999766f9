"""The quality floor's buffer: sized for the operator's two-sample Welch non-inferiority test
(pure functions and a simulated sampler, several seeds, no timing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policy_store import (
    InMemoryPolicyStore,
    Objective,
    Observation,
    PolicyReader,
    RewardSpec,
    awaits_baseline,
    component_values,
    confidence_buffer,
    constraint_status,
    make_config,
)
from policy_store._constraint import welch_buffer
from policy_store.evaluation import Summary, non_inferior, welch_interval

MARGIN = Objective(kind="quality_floor", quality_margin=0.02)
ABSOLUTE = Objective(kind="quality_floor", quality_floor=0.8)
Z95 = 1.6448536269514722


def sums(x: np.ndarray) -> tuple[float, float, float]:
    return float(x.sum()), float((x * x).sum()), float(len(x))


@pytest.mark.parametrize("seed", range(3))
def test_buffer_is_the_welch_half_width_plus_the_power_term(seed):
    rng = np.random.default_rng(seed)
    served = rng.beta(8, 2, 3000)
    base = rng.beta(12, 1, 400)
    se = math.sqrt(served.var(ddof=1) / len(served) + base.var(ddof=1) / len(base))
    half = welch_interval(Summary.of(served), Summary.of(base), 0.95).half_width
    # power 0.5: exactly the half-width of the report's 95% Welch interval (t by a series)
    coin = MARGIN.model_copy(update={"power": 0.5})
    assert welch_buffer(coin, sums(served), sums(base)) == pytest.approx(half, rel=1e-4)
    # power 0.95 adds z·SE, and the target's variance enters that term only
    assert welch_buffer(MARGIN, sums(served), sums(base)) == pytest.approx(
        half + Z95 * se, rel=1e-4
    )
    tv = 2e-5
    assert welch_buffer(MARGIN, sums(served), sums(base), tv) == pytest.approx(
        half + Z95 * math.sqrt(se * se + tv), rel=1e-4
    )
    # a lower level or power narrows it
    assert welch_buffer(MARGIN.model_copy(update={"confidence": 0.9}), sums(served), sums(base)) < (
        welch_buffer(MARGIN, sums(served), sums(base))
    )
    # an absolute floor: the one-sample t test of the mean against the floor
    assert welch_buffer(ABSOLUTE, sums(served)) == pytest.approx(
        (1.9603 + Z95) * served.std(ddof=1) / math.sqrt(len(served)), rel=1e-3
    )


def test_small_samples_use_the_t_quantile():
    """With few observations the Welch degrees of freedom make the buffer wider than the
    normal approximation, as the report's interval is."""
    rng = np.random.default_rng(5)
    served, base = rng.uniform(0.5, 1.0, 8), rng.uniform(0.7, 1.0, 6)
    coin = MARGIN.model_copy(update={"power": 0.5})
    half = welch_interval(Summary.of(served), Summary.of(base), 0.95).half_width
    se = math.sqrt(served.var(ddof=1) / 8 + base.var(ddof=1) / 6)
    assert welch_buffer(coin, sums(served), sums(base)) == pytest.approx(half, rel=0.01)
    assert welch_buffer(coin, sums(served), sums(base)) > 1.96 * se * 1.05


@pytest.mark.parametrize("seed", range(3))
def test_buffer_shrinks_as_evidence_grows(seed):
    rng = np.random.default_rng(10 + seed)
    served = rng.beta(8, 2, 40_000)
    base = rng.beta(12, 1, 8_000)
    buffers = [
        welch_buffer(MARGIN, sums(served[: 5 * n]), sums(base[:n]), 0.01 / n)
        for n in (10, 40, 160, 640, 2560, 8000)
    ]
    assert buffers == sorted(buffers, reverse=True), buffers
    assert buffers[-1] < 0.01 < buffers[0]


def test_no_variance_no_buffer():
    same = (80.0, 64.0, 100.0)  # 100 observations of 0.8
    assert welch_buffer(MARGIN, same, same) == 0.0
    assert welch_buffer(MARGIN, (0.0, 0.0, 0.0), None) == 0.0
    assert welch_buffer(MARGIN, same, same, 1e-4) == pytest.approx(Z95 * 0.01)
    # one observation per side: no sample variance yet, only the target's own
    assert welch_buffer(MARGIN, (0.9, 0.81, 1.0), (0.7, 0.49, 1.0), 4e-4) == pytest.approx(
        Z95 * 0.02
    )


@pytest.mark.parametrize("seed", range(3))
def test_on_its_bound_the_learner_passes_the_report_95_percent_of_the_time(seed):
    """The point of the buffer. A learner whose served quality has the mean floor + buffer
    (the buffer from its own sums, the floor from a noisy estimate of the baseline's
    quality) passes the report's test at the margin in ≈ 95 % of trials; with the
    one-sample bound z·sd/√N it kept before, far less often."""
    rng = np.random.default_rng(100 + seed)
    trials, n, n_b, margin = 2000, 2000, 500, MARGIN.quality_margin
    mu_b, sd_s, sd_b, sd_est = 0.9, 0.12, 0.06, 0.002
    passed, passed_before = 0, 0
    for _ in range(trials):
        base = rng.normal(mu_b, sd_b, n_b)
        noise = rng.normal(0.0, sd_s, n)
        estimate = mu_b + rng.normal(0.0, sd_est)  # the learner's estimate of the baseline
        for old in (False, True):
            if old:
                buffer = confidence_buffer(MARGIN, *sums(noise), sd_est**2)
            else:
                buffer = welch_buffer(MARGIN, sums(noise), sums(base), sd_est**2)
            served = noise + estimate - margin + buffer
            verdict = non_inferior(welch_interval(Summary.of(served), Summary.of(base)), margin)
            if old:
                passed_before += verdict
            else:
                passed += verdict
    assert 0.93 <= passed / trials <= 0.97, passed / trials
    assert passed_before / trials < 0.75, passed_before / trials


def two_arm_store(rollout_fraction: float):
    """600 observations, 70 % of them the baseline arm's; (store, every quality, baseline's)."""
    rng = np.random.default_rng(7)
    spec = RewardSpec()
    arms = ("big", "small")
    obs, q_all, q_big = [], [], []
    for i in range(600):
        arm = arms[int(rng.random() < 0.7)]
        q = float(rng.beta(18, 2) if arm == "big" else rng.beta(6, 2))
        x = (1.0, float(rng.normal()))
        obs.append(
            Observation(f"d{i}", arm, x, q, components=component_values(spec, q, 0.5, 0.1, False))
        )
        q_all.append(q)
        if arm == "big":
            q_big.append(q)
    store = InMemoryPolicyStore()
    store.create(
        make_config(
            name="p",
            arms=arms,
            n_features=2,
            objective=MARGIN,
            baseline_arm="big",
            rollout_fraction=rollout_fraction,
        )
    )
    store.apply("p", obs)
    return store, np.array(q_all), np.array(q_big)


def test_constraint_status_sizes_the_floor_from_the_baseline_arms_own_sums():
    """A margin's buffer is ``welch_buffer`` of quality over every arm against the baseline
    arm's own observations when every request is learned; the budget keeps the one-sided
    ``confidence_buffer``."""
    arms = ("big", "small")
    store, q_all, q_big = two_arm_store(1.0)
    reader = PolicyReader(store, "p", start=False, notify=False)
    reader.refresh()
    status = constraint_status(reader.config, reader.view.snapshot)
    plain = welch_buffer(MARGIN, sums(q_all), sums(q_big))
    assert status.buffer > plain  # plus the variance of the baseline's estimate
    assert status.buffer == pytest.approx(plain, rel=0.2)
    assert status.bound == pytest.approx(status.target + status.buffer)
    store.put_config(
        make_config(
            name="p",
            arms=arms,
            n_features=2,
            objective=Objective(kind="budget", max_cost=0.9),
            baseline_arm="big",
        )
    )
    reader.refresh()
    budget = constraint_status(reader.config, reader.view.snapshot)
    assert budget.buffer == pytest.approx(0.0)  # every cost 0.5: no variance


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_with_a_rollout_split_the_floor_is_sized_for_the_cohorts_the_report_compares(fraction):
    """The report tests the learned cohort (f·n requests) against the baseline cohort
    ((1 − f)·n), not against every request the baseline arm served: the samples keep their
    means and variances and take the cohorts' sizes."""
    store, q_all, q_big = two_arm_store(fraction)
    reader = PolicyReader(store, "p", start=False, notify=False)
    reader.refresh()
    status = constraint_status(reader.config, reader.view.snapshot)
    n = len(q_all)
    served = tuple(v * fraction for v in sums(q_all))
    base = tuple(v * (1 - fraction) * n / len(q_big) for v in sums(q_big))
    split = welch_buffer(MARGIN, served, base)
    assert status.buffer > split  # plus the variance of the baseline's estimate
    assert status.buffer == pytest.approx(split, rel=0.2)
    # 70 % of the requests went to the baseline arm: at f = 0.5 its cohort is 300, not 420
    own = welch_buffer(MARGIN, sums(q_all), sums(q_big))
    assert split > own


@pytest.mark.parametrize("seed", range(3))
def test_a_margin_has_no_target_until_the_baseline_is_known_to_within_the_margin(seed):
    """The conservative start lasts until the baseline's quality on the traffic is estimated
    to within the margin at the objective's confidence (``baseline_known``), not for a fixed
    count: 20 observations with sd 0.08 know it to ±0.035, far wider than a margin of 0.01.
    Meanwhile the selectors serve the baseline arm and λ does not move."""
    rng = np.random.default_rng(seed)
    spec = RewardSpec()
    objective = Objective(kind="quality_floor", quality_margin=0.01)
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=("big", "small"), n_features=1,
                             objective=objective, baseline_arm="big"))  # fmt: skip
    reader = PolicyReader(store, "p", start=False, notify=False)

    def add(n: int, start: int) -> None:
        qs = np.clip(rng.normal(0.9, 0.08, n), 0, 1)
        store.apply("p", [Observation(f"d{start + i}", "big", (1.0,), float(q),
                                      components=component_values(spec, float(q), 0.5, 0.1))
                          for i, q in enumerate(qs)])  # fmt: skip

    add(40, 0)  # twice MIN_BASELINE, still ±0.025
    reader.refresh()
    assert awaits_baseline(reader.config, reader.view.snapshot)
    assert math.isnan(constraint_status(reader.config, reader.view.snapshot).target)
    add(360, 40)  # 400: ±0.008
    reader.refresh()
    assert not awaits_baseline(reader.config, reader.view.snapshot)
    status = constraint_status(reader.config, reader.view.snapshot)
    assert status.target == pytest.approx(0.89, abs=0.02)
    assert math.isfinite(status.bound)
