"""Known answers for the interval helpers behind the report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policy_store.evaluation import (
    Interval,
    Summary,
    bootstrap_interval,
    json_safe,
    mean_interval,
    non_inferior,
    norm_ppf,
    ratio_change,
    t_ppf,
    welch_interval,
)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    # reference values from statistical tables
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 5, 2.5706),
        (0.975, 10, 2.2281),
        (0.975, 30, 2.0423),
        (0.995, 20, 2.8453),
        (0.9, 4, 1.5332),
    ],
)
def test_t_quantiles_match_tables(p, df, expected):
    assert t_ppf(p, df) == pytest.approx(expected, abs=2e-3)


def test_normal_quantiles():
    assert norm_ppf(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert norm_ppf(0.5) == pytest.approx(0.0, abs=1e-12)
    assert norm_ppf(0.001) == pytest.approx(-3.090232, abs=1e-6)


def test_welch_known_answer():
    # hand computation with Welch-Satterthwaite df
    a = [4.0, 5.0, 6.0, 5.0, 5.0]  # mean 5, var 0.5
    b = [1.0, 3.0, 5.0, 3.0, 3.0]  # mean 3, var 2.0
    iv = welch_interval(Summary.of(a), Summary.of(b))
    se = math.sqrt(0.5 / 5 + 2.0 / 5)
    df = se**4 / ((0.5 / 5) ** 2 / 4 + (2.0 / 5) ** 2 / 4)  # ≈ 5.88
    assert iv.estimate == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(t_ppf(0.975, df) * se)
    assert iv.low == pytest.approx(2.0 - 2.4626 * se, abs=0.01)


def test_welch_coverage_on_unequal_variances():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        a = rng.normal(1.0, 3.0, 12)
        b = rng.normal(0.5, 0.5, 40)
        hits += welch_interval(Summary.of(a), Summary.of(b)).contains(0.5)
    assert 0.92 <= hits / 400 <= 0.98


def test_ratio_change_agrees_with_bootstrap():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, 3000)  # mean 0.5
    rl = rng.uniform(0.1, 0.7, 3000)  # mean 0.4 → 20% cheaper
    delta = ratio_change(Summary.of(rl), Summary.of(base))
    boot = bootstrap_interval(rl, base, lambda t, c: 1 - t / c, n_boot=2000, rng=1)
    assert delta.estimate == pytest.approx(1 - rl.mean() / base.mean())
    assert delta.contains(0.2) and boot.contains(0.2)
    assert delta.low == pytest.approx(boot.low, abs=0.01)
    assert delta.high == pytest.approx(boot.high, abs=0.01)


def test_non_inferiority_verdicts():
    assert non_inferior(Interval(-0.002, -0.008, 0.004), 0.01) is True
    assert non_inferior(Interval(-0.002, -0.012, 0.008), 0.01) is False
    assert non_inferior(Interval(0.0, float("nan"), float("nan")), 0.01) is None
    with pytest.raises(ValueError, match="margin"):
        non_inferior(Interval(0, 0, 0), -0.01)


def test_degenerate_samples_give_undefined_intervals():
    one = Summary.of([0.3])
    assert math.isnan(mean_interval(one).low)
    assert math.isnan(welch_interval(one, Summary.of([0.1, 0.2])).low)
    assert math.isnan(ratio_change(Summary.of([0.0, 0.0]), Summary.of([0.1, 0.2])).estimate)
    empty = Summary.of([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_json_safe_replaces_every_non_finite_float():
    nan, inf = float("nan"), float("inf")
    obj = {"a": nan, "b": [1.0, -inf, {"c": inf}], "d": (0.5, nan), "e": "nan", "f": 3}
    assert json_safe(obj) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": [0.5, None],
        "e": "nan",
        "f": 3,
    }


def test_has_variance_needs_two_finite_observations():
    assert Summary.of([0.1, 0.2]).has_variance
    assert not Summary.of([0.1]).has_variance
    assert not Summary(5, 0.1, float("nan")).has_variance
