"""Component statistics: the values of an outcome, the reward's linearity over them, the
update rule for the component sums (legacy migration included), additivity, and the
snapshot built with objective weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import (
    COMPONENTS,
    ArmStats,
    ComponentStats,
    InvalidDeltaError,
    Observation,
    PolicyState,
    RewardSpec,
    aggregate,
    apply_deltas,
    component_values,
    merge,
    reward_weights,
)

D = 3
SPECS = [
    RewardSpec(),
    RewardSpec(quality_weight=1.0, cost_weight=0.0, latency_weight=0.0, failure_reward=-0.5),
    RewardSpec(cost_cap=0.2, latency_cap_ms=3000.0, failure_reward=0.1, default_quality=0.3),
]


def outcome(rng: np.random.Generator) -> dict:
    """A random raw outcome: components missing at random, sometimes an error."""
    o: dict = {"error": bool(rng.random() < 0.15)}
    if rng.random() < 0.8:
        o["quality"] = float(rng.uniform(-0.2, 1.2))
    if rng.random() < 0.8:
        o["cost"] = float(rng.uniform(0.0, 0.5))
    if rng.random() < 0.8:
        o["latency"] = float(rng.uniform(0.0, 5000.0))
    return o


def observe(spec: RewardSpec, i: int, arm: str, x, o: dict, with_components=True, w=1.0):
    values = component_values(spec, **o) if with_components else None
    return Observation(f"d{i}", arm, tuple(x), spec.reward(**o), w, values)


@pytest.mark.parametrize("spec", SPECS)
def test_reward_is_linear_in_the_component_values(spec):
    rng = np.random.default_rng(0)
    alpha = reward_weights(spec)
    assert alpha.shape == (len(COMPONENTS),)
    errors = 0
    for _ in range(500):
        o = outcome(rng)
        errors += o["error"]
        v = np.array(component_values(spec, **o))
        assert v.shape == (5,) and v[4] == 1.0
        assert alpha @ v == pytest.approx(spec.reward(**o), abs=1e-12)
    assert errors > 20


def test_component_values_conventions():
    spec = RewardSpec(cost_cap=0.1, latency_cap_ms=1000.0)
    assert component_values(spec, error=True, quality=0.9) == (0.0, 0.0, 0.0, 1.0, 1.0)
    assert component_values(spec) == (0.5, 0.5, 0.5, 0.0, 1.0)  # every default
    assert component_values(spec, quality=2.0, cost=0.05, latency=500.0) == (
        1.0,
        0.5,
        0.5,
        0.0,
        1.0,
    )
    # already normalised values (a RewardEvent's) are not divided by the caps again
    assert component_values(spec, cost=0.5, latency=0.25, normalised=True)[1:3] == (0.5, 0.25)


def test_aggregate_sums_components_and_b_is_their_weighted_sum():
    rng = np.random.default_rng(1)
    spec = SPECS[2]
    obs = [
        observe(spec, i, "a", rng.normal(size=D), outcome(rng), w=float(rng.uniform(0.2, 2)))
        for i in range(50)
    ]
    st_ = aggregate(obs, D)["a"]
    c = st_.components
    assert c is not None and not c.legacy
    X = np.array([o.features for o in obs])
    w = np.array([o.weight for o in obs])
    V = np.array([o.components for o in obs])
    np.testing.assert_allclose(c.y, (V * w[:, None]).T @ X, atol=1e-12)
    np.testing.assert_allclose(c.s, V.T @ w, atol=1e-12)
    np.testing.assert_allclose(c.s2, (V**2).T @ w, atol=1e-12)
    np.testing.assert_allclose(reward_weights(spec) @ c.y, st_.b, atol=1e-10)
    assert c.s[COMPONENTS.index("one")] == pytest.approx(st_.n)


def test_mixed_batch_keeps_the_gram_of_the_component_observations():
    rng = np.random.default_rng(2)
    spec = RewardSpec()
    obs = [
        observe(spec, i, "a", rng.normal(size=D), outcome(rng), with_components=i % 3 != 0)
        for i in range(30)
    ]
    st_ = aggregate(obs, D)["a"]
    with_c = [o for o in obs if o.components is not None]
    X = np.array([o.features for o in with_c])
    assert st_.components.legacy
    np.testing.assert_allclose(st_.components.xx, X.T @ X, atol=1e-12)
    assert st_.components.n == len(with_c)
    assert aggregate(obs[::3], D)["a"].components is None  # none carried components


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("with_components", [True, False])
def test_one_observation_gives_the_batched_sums(seed, with_components):
    """An arm's batch of one takes a path without stacking: its sums are those of the
    batched arithmetic (checked against the same observation batched with a weight-0 twin,
    which adds exact zeros)."""
    rng = np.random.default_rng(seed)
    spec = SPECS[seed % len(SPECS)]
    for i in range(20):
        x, o, w = rng.normal(size=D) * 10.0 ** rng.integers(-3, 4), outcome(rng), rng.uniform(0, 3)
        one = observe(spec, i, "a", x, o, with_components, w=float(w))
        twin = observe(spec, -i - 1, "a", x, o, with_components, w=0.0)
        single, batched = aggregate([one], D)["a"], aggregate([one, twin], D)["a"]
        assert single.n == batched.n == one.weight
        for a, b in ((single.xx, batched.xx), (single.b, batched.b)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        if not with_components:
            assert single.components is None and batched.components is None
            continue
        c1, c2 = single.components, batched.components
        assert not c1.legacy and not c2.legacy
        for name in ("y", "s", "s2"):
            np.testing.assert_allclose(getattr(c1, name), getattr(c2, name), rtol=1e-12, atol=1e-12)
        assert not single.xx.flags.writeable and not c1.y.flags.writeable


def test_bad_component_values_are_refused():
    obs = [Observation("a", "a", (1.0,) * D, 1.0, components=(1.0, 0.0))]
    with pytest.raises(InvalidDeltaError, match="component"):
        aggregate(obs, D)
    obs = [Observation("a", "a", (1.0,) * D, 1.0, components=(np.nan, 0.0, 0.0, 0.0, 1.0))]
    with pytest.raises(InvalidDeltaError, match="NaN"):
        aggregate(obs, D)
    with pytest.raises(InvalidDeltaError, match="component sums contain NaN"):
        aggregate(obs * 2, D)  # the batched path says the same
    obs = [Observation("a", "a", (np.inf,) + (1.0,) * (D - 1), 1.0, components=(0.0,) * 5)]
    with np.errstate(invalid="ignore"), pytest.raises(InvalidDeltaError, match="delta contains"):
        aggregate(obs, D)  # the features are named before the component sums (0·inf = NaN)


def test_legacy_arm_migrates_on_its_first_component_delta():
    rng = np.random.default_rng(3)
    spec, gamma = RewardSpec(), 0.9
    old_obs = [observe(spec, i, "a", rng.normal(size=D), outcome(rng), False) for i in range(20)]
    new_obs = [observe(spec, i, "a", rng.normal(size=D), outcome(rng)) for i in range(20, 30)]
    more = [observe(spec, i, "a", rng.normal(size=D), outcome(rng)) for i in range(30, 40)]
    legacy = aggregate(old_obs, D)["a"]
    assert legacy.components is None and legacy.n > 0
    d1, d2 = aggregate(new_obs, D)["a"], aggregate(more, D)["a"]
    s1 = legacy.updated(d1, gamma)
    c = s1.components
    assert c.legacy  # sums and the Gram started from that delta
    np.testing.assert_allclose(c.y, d1.components.y)
    np.testing.assert_allclose(c.xx, d1.xx)
    assert c.n == d1.n
    s2 = s1.updated(d2, gamma)  # from then on both are maintained, decayed with the arm
    f = gamma**d2.n
    np.testing.assert_allclose(s2.components.y, c.y * f + d2.components.y, atol=1e-12)
    np.testing.assert_allclose(s2.components.xx, c.xx * f + d2.xx, atol=1e-12)
    assert s2.components.n == pytest.approx(c.n * f + d2.n)
    np.testing.assert_allclose(s2.xx, s1.xx * f + d2.xx, atol=1e-12)
    # an arm without data is not legacy: its sums are implicit (its own xx and n)
    fresh = ArmStats.zeros(D).updated(d1, gamma)
    assert not fresh.components.legacy
    # a delta without components on a component arm makes the Gram explicit
    mixed = fresh.updated(legacy, gamma)
    np.testing.assert_allclose(mixed.components.xx, fresh.xx * gamma**legacy.n, atol=1e-12)
    assert mixed.components.n == pytest.approx(fresh.n * gamma**legacy.n)


def comparable(s: ArmStats) -> dict:
    """Everything an arm's statistics determine, with implicit component Grams resolved."""
    c = s.components
    out = {"xx": s.xx, "b": s.b, "n": s.n, "has": c is not None}
    if c is not None:
        out |= {"y": c.y, "s": c.s, "s2": c.s2, "legacy": c.legacy}
        out |= {"gx": s.xx if c.xx is None else c.xx, "gn": s.n if c.n is None else c.n}
    return out


def assert_same(a: ArmStats, b: ArmStats) -> None:
    ca, cb = comparable(a), comparable(b)
    assert ca.keys() == cb.keys()
    for k in ca:
        np.testing.assert_allclose(ca[k], cb[k], rtol=1e-9, atol=1e-9, err_msg=k)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kinds=st.lists(st.booleans(), min_size=1, max_size=30),
    split=st.integers(0, 30),
)
def test_merge_of_two_streams_equals_sequential_learning_with_components(seed, kinds, split):
    rng = np.random.default_rng(seed)
    spec = SPECS[seed % len(SPECS)]
    arms = ["a", "b"]
    obs = [
        observe(spec, i, arms[int(rng.integers(2))], rng.normal(size=D), outcome(rng), k)
        for i, k in enumerate(kinds)
    ]
    first, second = obs[:split], obs[split:]
    merged = merge(
        PolicyState(arms=aggregate(first, D), dual=0.5),
        PolicyState(arms=aggregate(second, D), dual=0.25),
    )
    assert merged.dual == 0.75
    state: dict[str, ArmStats] = {}
    for o in obs:  # one observation at a time
        state = apply_deltas(state, aggregate([o], D))
    assert sorted(merged.arms) == sorted(state)
    for arm in state:
        assert_same(merged.arms[arm], state[arm])


def test_component_bytes_round_trip():
    rng = np.random.default_rng(4)
    c = ComponentStats.of(rng.normal(size=(5, D)), rng.normal(size=5), rng.random(5))
    back = ComponentStats.from_bytes(c.blob(), D)
    assert back.xx is None and c.xx_bytes() == b""
    np.testing.assert_array_equal(back.y, c.y)
    np.testing.assert_array_equal(back.s2, c.s2)
    g = ComponentStats.of(c.y, c.s, c.s2, np.eye(D), 3.0)
    back = ComponentStats.from_bytes(g.blob(), D, g.xx_bytes(), repr(g.n))
    np.testing.assert_array_equal(back.xx, np.eye(D))
    assert back.n == 3.0
    with pytest.raises(InvalidDeltaError):
        ComponentStats.from_bytes(c.blob()[:-8], D)
