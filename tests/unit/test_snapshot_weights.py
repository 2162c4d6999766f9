"""Snapshots built with objective weights over the component sums (``weights=``)."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import (
    AlgorithmConfig,
    ArmStats,
    LinUCB,
    Observation,
    PolicyState,
    RewardSpec,
    aggregate,
    apply_deltas,
    component_values,
    make_algorithm,
    reward_weights,
)

D, ARMS = 4, ("a", "b", "c")
SPEC1 = RewardSpec()
SPEC2 = RewardSpec(quality_weight=0.9, cost_weight=0.05, latency_weight=0.05, failure_reward=-1)


def outcomes(seed: int, n: int, arms=ARMS):
    rng = np.random.default_rng(seed)
    for i in range(n):
        o = {"quality": float(rng.random()), "cost": float(rng.random())}
        if rng.random() < 0.7:
            o["latency"] = float(rng.random())
        o["error"] = bool(rng.random() < 0.1)
        yield f"{seed}-{i}", str(rng.choice(arms)), tuple(rng.normal(size=D)), o


def learn(spec, seed=0, n=300, components=True, state=None, arms=ARMS, gamma=1.0):
    obs = [
        Observation(i, arm, x, spec.reward(**o), 1.0, component_values(spec, **o))
        if components
        else Observation(i, arm, x, spec.reward(**o))
        for i, arm, x, o in outcomes(seed, n, arms)
    ]
    return apply_deltas(state or {}, aggregate(obs, D), gamma)


def stripped(arms: dict[str, ArmStats]) -> dict[str, ArmStats]:
    return {a: ArmStats.of(s.xx, s.b, s.n) for a, s in arms.items()}


@pytest.fixture(params=["linucb", "ts"])
def algo(request):
    return make_algorithm(AlgorithmConfig(name=request.param))


def test_without_weights_the_snapshot_is_todays(algo):
    arms = learn(SPEC1)
    with_c = algo.snapshot(PolicyState(arms=arms, version=3, dual=0.4), ARMS, D)
    without = algo.snapshot(PolicyState(arms=stripped(arms), version=3), ARMS, D)
    for name in ("theta", "a_inv", "chol", "stacked", "prior"):
        np.testing.assert_array_equal(getattr(with_c, name), getattr(without, name), name)
    assert with_c.weights is None and with_c.dual == 0.4
    assert without.components is None and with_c.components.any()


def test_the_reward_weights_give_the_reward_estimates(algo):
    state = PolicyState(arms=learn(SPEC1))
    plain = algo.snapshot(state, ARMS, D)
    weighted = algo.snapshot(state, ARMS, D, reward_weights(SPEC1))
    np.testing.assert_allclose(weighted.theta, plain.theta, atol=1e-9)
    np.testing.assert_array_equal(weighted.a_inv, plain.a_inv)
    np.testing.assert_allclose(weighted.stacked, plain.stacked, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_new_weights_equal_relearning_under_them(algo, seed):
    learnt = algo.snapshot(PolicyState(arms=learn(SPEC1, seed)), ARMS, D, reward_weights(SPEC2))
    relearnt = algo.snapshot(PolicyState(arms=learn(SPEC2, seed)), ARMS, D)
    np.testing.assert_allclose(learnt.theta, relearnt.theta, atol=1e-9)
    assert not np.allclose(learnt.theta, algo.snapshot(learnt_state(seed), ARMS, D).theta)


def learnt_state(seed: int) -> PolicyState:
    return PolicyState(arms=learn(SPEC1, seed))


def legacy_state() -> dict[str, ArmStats]:
    """Arm "a" learnt before components existed, then with them; "b" and "c" only with."""
    old = learn(SPEC1, seed=5, n=200, components=False, arms=("a",))
    return learn(SPEC1, seed=6, n=200, state=old)


def test_legacy_arm_keeps_its_reward_sums_or_uses_its_component_observations():
    algo = LinUCB(pooled=False)
    arms = legacy_state()
    assert arms["a"].components.legacy and not arms["b"].components.legacy
    w = np.array([1.0, -0.5, 0.0, 0.0, 0.0])
    ridge = np.eye(D)
    a, b = arms["a"], arms["b"]
    inv_a, inv_ac, inv_b = (np.linalg.inv(ridge + m) for m in (a.xx, a.components.xx, b.xx))
    state = PolicyState(arms=arms)
    keep = algo.snapshot(state, ARMS, D, w)  # legacy_reward=True: the weighted objective
    np.testing.assert_allclose(keep.theta[0], inv_a @ a.b, atol=1e-9)
    np.testing.assert_allclose(keep.a_inv[0], inv_a, atol=1e-9)
    np.testing.assert_allclose(keep.theta[1], inv_b @ (w @ b.components.y), atol=1e-9)
    comp = algo.snapshot(state, ARMS, D, w, legacy_reward=False)  # constrained objectives
    np.testing.assert_allclose(comp.theta[0], inv_ac @ (w @ a.components.y), atol=1e-9)
    np.testing.assert_allclose(comp.a_inv[0], inv_ac, atol=1e-9)
    np.testing.assert_allclose(comp.theta[1], keep.theta[1], atol=1e-12)
    for snap in (keep, comp, algo.snapshot(state, ARMS, D)):  # θ per component
        np.testing.assert_allclose(snap.components[0], a.components.y @ inv_ac, atol=1e-9)
        np.testing.assert_allclose(snap.components[1], b.components.y @ inv_b, atol=1e-9)
        assert snap.legacy.tolist() == [True, False, False]
        assert snap.comp_n[0] == a.components.n and snap.comp_n[1] == b.n
        np.testing.assert_array_equal(snap.comp_s[1], b.components.s)


@pytest.mark.parametrize("legacy_reward", [True, False])
@pytest.mark.parametrize("weights", [None, reward_weights(SPEC2)])
def test_with_arm_equals_a_full_rebuild(algo, weights, legacy_reward):
    arms = legacy_state()
    full = algo.snapshot(
        PolicyState(arms=arms, dual=0.2), ARMS, D, weights, legacy_reward=legacy_reward
    )
    part = algo.snapshot(
        PolicyState(arms={"b": arms["b"]}, dual=0.2),
        ARMS[:2],
        D,
        weights,
        legacy_reward=legacy_reward,
    )
    part = part.with_arm("a", arms["a"]).with_arm("c", arms["c"])
    assert part.arms == full.arms and part.dual == 0.2
    for name in ("theta", "a_inv", "chol", "components", "comp_y", "comp_xx", "comp_n"):
        np.testing.assert_allclose(getattr(part, name), getattr(full, name), atol=1e-10)
    assert part.legacy.tolist() == full.legacy.tolist()


def test_with_arm_adds_component_sums_to_a_snapshot_without_any(algo):
    arms = legacy_state()
    old = {a: ArmStats.of(s.xx, s.b, s.n) for a, s in arms.items()}  # before components
    snap = algo.snapshot(PolicyState(arms=old), ARMS, D)
    assert snap.components is None and snap.with_arm("b", old["b"]).components is None
    part = snap.with_arm("b", arms["b"])
    full = algo.snapshot(PolicyState(arms={**old, "b": arms["b"]}), ARMS, D)
    for name in ("theta", "a_inv", "components", "comp_y", "comp_xx", "comp_n"):
        np.testing.assert_allclose(getattr(part, name), getattr(full, name), atol=1e-10)
    assert part.legacy.tolist() == full.legacy.tolist() == [True, False, True]


def test_weights_must_be_one_per_component():
    algo = make_algorithm(AlgorithmConfig())
    with pytest.raises(ValueError, match="one per component"):
        algo.snapshot(PolicyState(arms={}), ARMS, D, [1.0, 0.0])


@pytest.mark.parametrize("legacy_reward", [True, False])
@pytest.mark.parametrize(
    "before, after",
    [
        (reward_weights(SPEC1), reward_weights(SPEC2)),
        (None, np.array([0.3, -0.7, -0.1, 0.0, 0.0])),
        (np.array([0.8, -0.2, 0.0, 0.0, 0.0]), None),
    ],
)
@pytest.mark.parametrize("make_arms", [legacy_state, lambda: learn(SPEC1, seed=3)])
def test_reweighted_equals_a_build_with_the_new_weights(
    algo, legacy_reward, before, after, make_arms
):
    state = PolicyState(arms=make_arms(), version=7, dual=0.3)
    snap = algo.snapshot(state, ARMS, D, before, legacy_reward=legacy_reward)
    got = snap.reweighted(after, dual=1.5)
    want = algo.snapshot(
        PolicyState(arms=state.arms, version=7, dual=1.5),
        ARMS,
        D,
        after,
        legacy_reward=legacy_reward,
    )
    assert got.dual == 1.5 and got.version == 7
    names = ("theta", "a_inv", "chol", "stacked", "prior", "components", "component_prior")
    for name in names:
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-10)
    if after is None:
        assert got.weights is None
    else:
        np.testing.assert_array_equal(got.weights, after)
        assert not got.theta.flags.writeable


def test_reweighted_refactorises_nothing_when_the_gram_stays(algo):
    state = PolicyState(arms=legacy_state())
    snap = algo.snapshot(state, ARMS, D, reward_weights(SPEC1), legacy_reward=False)
    got = snap.reweighted(reward_weights(SPEC2))
    assert got.a_inv is snap.a_inv and got.chol is snap.chol
    assert got.components is snap.components  # θ per component does not depend on weights
    assert not np.allclose(got.theta, snap.theta)
