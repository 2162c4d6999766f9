"""The t quantile against scipy, and the overlap warning of off-policy evaluation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policy_store.evaluation import (
    LoggedData,
    Summary,
    betainc,
    evaluate,
    overlap_warning,
    t_ppf,
    welch_interval,
)

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")

DFS = [0.4, 1.0, 1.3, 1.7, 2.0, 2.5, 3.0, 3.7, 4.2, 7.0, 10.0, 29.5, 100.0, 1e3, 1e5, 1e6]
PS = [1e-6, 0.025, 0.05, 0.4, 0.5000001, 0.6, 0.9, 0.975, 0.995, 0.9995, 1 - 1e-7]


@pytest.mark.parametrize("df", DFS)
def test_t_ppf_matches_scipy_for_every_df_and_level(df):
    for p in PS:
        assert t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-8, abs=1e-9)


def test_small_fractional_df_the_issue_measured():
    # the former series gave 4.30 here: an interval 16% too narrow
    assert t_ppf(0.975, 1.7) == pytest.approx(5.119, abs=1e-3)
    assert t_ppf(0.975, 1.7) == pytest.approx(scipy_stats.t.ppf(0.975, 1.7), rel=1e-9)


def test_betainc_matches_scipy():
    for a, b, x in itertools.product([0.2, 0.5, 1.0, 3.5, 40.0], [0.5, 1.0, 7.0], [1e-4, 0.3, 0.9]):
        assert betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-9)


def test_welch_interval_uses_scipy_quantile_for_few_observations():
    t, c = Summary(3, 0.8, 0.04), Summary(2, 0.6, 0.01)
    iv = welch_interval(t, c, 0.95)
    v1, v0 = t.var / t.n, c.var / c.n
    df = (v1 + v0) ** 2 / (v1**2 / 2 + v0**2 / 1)
    want = scipy_stats.t.ppf(0.975, df) * np.sqrt(v1 + v0)
    assert iv.half_width == pytest.approx(want, rel=1e-8)


def _logs(n: int, rng: np.random.Generator, propensity: float) -> LoggedData:
    X = np.column_stack([np.ones(n), rng.random(n)])
    a = np.zeros(n, dtype=int)  # the baseline arm, always
    r = np.clip(0.6 + 0.1 * rng.normal(size=n), 0, 1)
    return LoggedData(X, a, r, np.full(n, propensity), ("base", "b", "c"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deterministic_baseline_logs_warn_about_overlap(seed):
    rng = np.random.default_rng(seed)
    data = _logs(400, rng, 1.0)
    target = np.tile([0.02, 0.49, 0.49], (400, 1))  # the target rarely serves the baseline arm
    res = evaluate(data, target, rng=seed)
    # all weights alike: the effective sample size alone looks perfect
    assert res.ess == pytest.approx(400)
    assert res.mean_weight == pytest.approx(0.02)
    assert res.overlap_warning and "weak overlap" in res.overlap_warning
    assert "mean weight 0.02" in res.overlap_warning and "max weight" in res.overlap_warning
    assert res.to_dict()["overlap_warning"] == res.overlap_warning


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_good_overlap_gives_no_warning(seed):
    rng = np.random.default_rng(seed)
    n = 600
    X = np.column_stack([np.ones(n), rng.random(n)])
    a = rng.integers(0, 3, n)  # uniform logging
    data = LoggedData(X, a, rng.random(n), np.full(n, 1 / 3), ("a", "b", "c"))
    target = np.tile([0.5, 0.3, 0.2], (n, 1))
    res = evaluate(data, target, rng=seed)
    assert res.overlap_warning is None
    assert 0.8 < res.mean_weight < 1.2


def test_one_heavy_round_warns():
    w = np.ones(100)
    w[0] = 40.0
    msg = overlap_warning(w)
    assert msg and "max weight 40.0" in msg
    assert overlap_warning(np.ones(100)) is None
