"""Conformance suite: the same checks on every algorithm the registry knows.

``ALGORITHMS`` is built from ``policy_store.algorithm_names()`` (the registry,
``policy_store/bandits/_registry.py``), plus the project default config, so every check
whose test takes the ``cfg`` fixture runs on every algorithm: same seed ⇒ same decisions,
a different seed explores differently, inputs not mutated and outputs read-only, state
survives the byte encoding, merging two partial states equals learning sequentially, A
stays symmetric positive definite under any updates, reported propensities are the
selection frequencies, the ε floor holds, an arm added at runtime is explored and learnt,
``Snapshot.with_arm`` equals a rebuild, a wrong feature size is refused clearly.

How to add an algorithm (it then gets all of the above with no change here):

1. write ``policy_store/bandits/<name>.py``: a subclass of ``Algorithm`` whose constructor
   takes its hyperparameters (passing ``epsilon``, ``ridge``, ``forgetting``, ``pooled`` to
   ``Algorithm.__init__``) and which implements ``_distribution`` (the probability of
   serving each arm for a context);
2. add its name to ``AlgorithmConfig.name`` and any new hyperparameter fields there;
3. register it in ``BUILDERS`` in ``policy_store/bandits/_registry.py``.

Checks specific to one algorithm (e.g. TS propensities are win probabilities) are at the
end of this module and name the algorithm they are about.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import (
    AlgorithmConfig,
    ArmStats,
    ContextualBandit,
    Observation,
    PolicyState,
    aggregate,
    algorithm_names,
    make_algorithm,
    merge,
)
from policy_store.bandits import Snapshot
from policy_store.simulator import LinearSimulator

ALGORITHMS = {name: AlgorithmConfig(name=name) for name in algorithm_names()}
ALGORITHMS["default"] = AlgorithmConfig()
K, D = 4, 6


def test_every_configurable_algorithm_is_registered_and_checked():
    configurable = set(get_args(AlgorithmConfig.model_fields["name"].annotation))
    assert configurable == set(algorithm_names())
    assert configurable <= set(ALGORITHMS)
    for name in configurable:
        assert make_algorithm(AlgorithmConfig(name=name)).name == name


@pytest.fixture(params=list(ALGORITHMS), ids=list(ALGORITHMS))
def cfg(request) -> AlgorithmConfig:
    return ALGORITHMS[request.param]


def learned_bandit(cfg: AlgorithmConfig, seed: int = 0, rounds: int = 300) -> ContextualBandit:
    bandit = ContextualBandit(K, D, algorithm=cfg, seed=seed)
    stream = LinearSimulator(K, D, seed=seed).stream(rounds)
    for t in range(rounds):
        x = stream.contexts[t]
        a = bandit.select_action(x)
        bandit.update(x, a, float(stream.rewards[t, a]))
    return bandit


def observations(seed: int, n: int, arms: list[str]) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [
        Observation(
            decision_id=f"{seed}-{i}",
            arm=arms[int(rng.integers(len(arms)))],
            features=tuple(rng.normal(size=D)),
            reward=float(rng.random()),
        )
        for i in range(n)
    ]


def test_same_seed_same_decisions(cfg):
    a = learned_bandit(cfg, seed=3)
    b = learned_bandit(cfg, seed=3)
    for arm in range(K):
        np.testing.assert_array_equal(a.state.arms[str(arm)].xx, b.state.arms[str(arm)].xx)
    xs = LinearSimulator(K, D, seed=9).stream(50).contexts
    assert [a.select_action(x) for x in xs] == [b.select_action(x) for x in xs]
    snap = a._snapshot()
    algo = make_algorithm(cfg)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for x in xs:
        s1, s2 = algo.select(snap, x, r1), algo.select(snap, x, r2)
        assert (s1.index, s1.propensity) == (s2.index, s2.propensity)
        np.testing.assert_array_equal(s1.probabilities, s2.probabilities)


def test_different_seeds_explore_differently(cfg):
    # Guards the test above against a policy that ignores its rng altogether.
    xs = LinearSimulator(K, D, seed=9).stream(300).contexts
    fresh = [ContextualBandit(K, D, algorithm=cfg, seed=s) for s in (1, 2)]
    picks = [[b.select_action(x) for x in xs] for b in fresh]
    assert picks[0] != picks[1]


def test_inputs_not_mutated(cfg):
    bandit = learned_bandit(cfg)
    state = bandit.state
    before = {a: (s.xx.copy(), s.b.copy(), s.n) for a, s in state.arms.items()}
    x = np.linspace(-1.0, 1.0, D)
    x_copy = x.copy()
    offered = [2, 0]
    algo = make_algorithm(cfg)
    snap = algo.snapshot(state, [str(k) for k in range(K)], D)
    algo.select(snap, x, np.random.default_rng(0), offered)
    algo.probabilities(snap, x, np.random.default_rng(0))
    bandit.select_action(x)
    bandit.update(x, 1, 0.5)
    np.testing.assert_array_equal(x, x_copy)
    assert offered == [2, 0]
    for arm, (xx, b, n) in before.items():
        np.testing.assert_array_equal(state.arms[arm].xx, xx)
        np.testing.assert_array_equal(state.arms[arm].b, b)
        assert state.arms[arm].n == n
    # snapshots and selections are read-only
    for arr in (snap.theta, snap.a_inv, snap.chol, snap.n):
        assert not arr.flags.writeable
    assert not algo.select(snap, x, np.random.default_rng(0)).probabilities.flags.writeable


def test_state_round_trips_through_bytes(cfg):
    bandit = learned_bandit(cfg)
    state = bandit.state
    decoded = PolicyState(
        arms={
            arm: ArmStats.from_bytes(s.xx_bytes(), s.b_bytes(), repr(s.n), D)
            for arm, s in state.arms.items()
        }
    )
    for arm, s in state.arms.items():
        assert s.xx_bytes() == decoded.arms[arm].xx_bytes()
        assert s.b_bytes() == decoded.arms[arm].b_bytes()
        assert s.n == decoded.arms[arm].n
    algo = make_algorithm(cfg)
    arms = [str(k) for k in range(K)]
    s1, s2 = algo.snapshot(state, arms, D), algo.snapshot(decoded, arms, D)
    x = np.ones(D)
    p1 = algo.probabilities(s1, x, np.random.default_rng(1))
    p2 = algo.probabilities(s2, x, np.random.default_rng(1))
    np.testing.assert_array_equal(p1, p2)


def test_merge_equals_sequential_learning(cfg):
    arms = [str(k) for k in range(K)]
    first, second = observations(1, 120, arms), observations(2, 80, arms[1:])
    s1 = PolicyState(arms=aggregate(first, D))
    s2 = PolicyState(arms=aggregate(second, D))
    merged = merge(s1, s2)
    # sequential: one observation at a time, as ContextualBandit.update does (no forgetting)
    bandit = ContextualBandit(K, D, algorithm=cfg.model_copy(update={"forgetting": 1.0}))
    for obs in first + second:
        bandit.update(obs.features, int(obs.arm), obs.reward)
    sequential = bandit.state
    for arm in arms:
        np.testing.assert_allclose(merged.arms[arm].xx, sequential.arms[arm].xx, atol=1e-9)
        np.testing.assert_allclose(merged.arms[arm].b, sequential.arms[arm].b, atol=1e-9)
        assert merged.arms[arm].n == sequential.arms[arm].n
    algo = make_algorithm(cfg)
    x = np.full(D, 0.3)
    pm = algo.probabilities(algo.snapshot(merged, arms, D), x, np.random.default_rng(4))
    ps = algo.probabilities(algo.snapshot(sequential, arms, D), x, np.random.default_rng(4))
    np.testing.assert_allclose(pm, ps, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    updates=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.lists(st.floats(-100, 100, allow_nan=False), min_size=3, max_size=3),
            st.floats(-10, 10, allow_nan=False),
        ),
        max_size=40,
    ),
    gamma=st.sampled_from([1.0, 0.99, 0.9, 0.5]),
    ridge=st.sampled_from([1e-3, 1.0, 10.0]),
    name=st.sampled_from(list(ALGORITHMS)),
)
def test_a_stays_symmetric_positive_definite(updates, gamma, ridge, name):
    d = 3
    stats = {str(k): ArmStats.zeros(d) for k in range(3)}
    for i, (arm, xs, r) in enumerate(updates):
        delta = aggregate([Observation(f"d{i}", str(arm), tuple(xs), r)], d)[str(arm)]
        stats[str(arm)] = stats[str(arm)].updated(delta, gamma)
    for s in stats.values():
        A = ridge * np.eye(d) + s.xx
        np.testing.assert_allclose(A, A.T, rtol=0, atol=1e-12 * max(1.0, np.abs(A).max()))
        assert np.linalg.eigvalsh(0.5 * (A + A.T)).min() > 0
    cfg = ALGORITHMS[name].model_copy(update={"ridge": ridge, "forgetting": gamma})
    algo = make_algorithm(cfg)
    snap = algo.snapshot(PolicyState(arms=stats), list(stats), d)
    assert np.isfinite(snap.theta).all() and np.isfinite(snap.a_inv).all()
    for k in range(3):
        np.testing.assert_allclose(snap.a_inv[k], snap.a_inv[k].T, atol=1e-9 / ridge)
    p = algo.probabilities(snap, np.ones(d), np.random.default_rng(0))
    assert abs(p.sum() - 1.0) < 1e-12 and (p > 0).all()


@pytest.mark.parametrize("offered", [None, [3, 1, 0]], ids=["all", "offered"])
def test_propensities_match_selection_frequencies(cfg, offered):
    bandit = learned_bandit(cfg, seed=2, rounds=150)
    snap = bandit._snapshot()
    algo = bandit.algorithm
    rng = np.random.default_rng(11)
    # a context where several arms are plausible, so the check is not trivially one-armed
    x = LinearSimulator(K, D, seed=2).stream(1).contexts[0]
    n = 20_000
    counts = np.zeros(K if offered is None else len(offered))
    mean_p = np.zeros_like(counts)
    for _ in range(n):
        sel = algo.select(snap, x, rng, offered)
        assert abs(sel.probabilities.sum() - 1.0) < 1e-12
        assert sel.propensity == sel.probabilities[sel.index]
        expected_arm = snap.arms[sel.index if offered is None else offered[sel.index]]
        assert sel.arm == expected_arm
        counts[sel.index] += 1
        mean_p += sel.probabilities
    freq, mean_p = counts / n, mean_p / n
    tol = 4.5 * np.sqrt(mean_p * (1 - mean_p) / n) + 1e-4
    assert (np.abs(freq - mean_p) <= tol).all(), (freq, mean_p)
    assert (mean_p > 0.0).all()


def test_epsilon_floor_gives_every_arm_probability(cfg):
    # one arm is overwhelmingly better: the others still keep ε/K
    rng = np.random.default_rng(0)
    bandit = ContextualBandit(K, D, algorithm=cfg, seed=0)
    for _ in range(2000):
        x = np.concatenate(([1.0], rng.normal(size=D - 1)))
        for arm in range(K):
            bandit.update(x, arm, 10.0 if arm == 2 else -10.0)
    floor = cfg.epsilon / K
    assert floor > 0
    for _ in range(20):
        p = bandit.probabilities(np.concatenate(([1.0], rng.normal(size=D - 1))))
        assert p.min() >= floor - 1e-12
        assert p.argmax() == 2


def test_arm_added_at_runtime_is_explored_and_learned(cfg):
    sim = LinearSimulator(3, D, seed=5, noise=0.05)
    stream = sim.stream(3000)
    bandit = ContextualBandit(2, D, algorithm=cfg, seed=5)
    best = stream.expected.argmax(axis=1)
    picks = []
    for t in range(len(stream)):
        if t == 500:
            assert bandit.add_arm() == 2
            assert bandit.probabilities(stream.contexts[t]).shape == (3,)
        x = stream.contexts[t]
        a = bandit.select_action(x)
        picks.append(a)
        bandit.update(x, a, float(stream.rewards[t, a]))
    picks = np.asarray(picks)
    assert (picks[:500] < 2).all()
    late = slice(2000, None)
    # the new arm is served, and served where it is the best arm, once learned
    assert (picks[late] == 2).sum() > 0
    where_best = best[late] == 2
    if where_best.any():
        assert (picks[late][where_best] == 2).mean() > 0.6


def test_snapshot_with_arm_equals_full_rebuild(cfg):
    bandit = learned_bandit(cfg)
    algo, state, arms = bandit.algorithm, bandit.state, [str(k) for k in range(K)]
    full = algo.snapshot(state, arms, D)
    part = algo.snapshot(PolicyState(arms={a: state.arms[a] for a in arms[:2]}), arms[:3], D)
    part = part.with_arm("2", state.arms["2"], algo.ridge).with_arm(
        "3", state.arms["3"], algo.ridge
    )
    assert part.arms == full.arms
    np.testing.assert_allclose(part.theta, full.theta, atol=1e-12)
    np.testing.assert_allclose(part.a_inv, full.a_inv, atol=1e-12)
    assert isinstance(part, Snapshot) and part.index["3"] == 3


def forgetting_regret(gamma: float, seed: int, world: str) -> float:
    """Regret per round after round 1000 in a changing world (``shift`` or ``drift``)."""
    cfg = AlgorithmConfig().model_copy(update={"forgetting": gamma})
    if world == "shift":  # the parameters are redrawn at round 2000
        stream = LinearSimulator(3, D, seed=seed, noise=0.05).stream(4000, shift_at=2000)
        start = 2000
    else:  # a slow random walk of every parameter
        stream = LinearSimulator(3, D, seed=seed, noise=0.05, drift=0.003).stream(4000)
        start = 1000
    bandit = ContextualBandit(3, D, algorithm=cfg, seed=seed)
    served = np.empty(len(stream), dtype=int)
    for t in range(len(stream)):
        x = stream.contexts[t]
        served[t] = bandit.select_action(x)
        bandit.update(x, served[t], float(stream.rewards[t, served[t]]))
    return float(stream.regret(served)[start:].mean())


@pytest.mark.parametrize("world", ["shift", "drift"])
def test_forgetting_discounts_old_data_in_a_changing_world(world):
    # forgetting must track the world better, on the average and on most seeds
    seeds = (0, 1, 2)
    with_forgetting = [forgetting_regret(0.99, s, world) for s in seeds]
    without = [forgetting_regret(1.0, s, world) for s in seeds]
    print(f"{world}: regret/round forgetting=0.99 {with_forgetting}, none {without}")
    assert np.mean(with_forgetting) < 0.7 * np.mean(without)
    assert sum(w < o for w, o in zip(with_forgetting, without, strict=True)) >= 2


def test_forgetting_decays_statistics():
    s = ArmStats.of(np.eye(2), np.ones(2), 4.0)
    d = s.decayed(0.5)
    np.testing.assert_array_equal(d.xx, 0.5 * np.eye(2))
    assert d.n == 2.0 and s.n == 4.0
    # a delta of weight 2 ages the old sums by γ² before it is added
    u = s.updated(ArmStats.of(np.zeros((2, 2)), np.ones(2), 2.0), forgetting=0.5)
    np.testing.assert_array_equal(u.xx, 0.25 * np.eye(2))
    np.testing.assert_array_equal(u.b, 1.25 * np.ones(2))
    assert u.n == 3.0 and s.n == 4.0


def test_wrong_feature_size_refused_with_clear_error(cfg):
    bandit = ContextualBandit(K, D, algorithm=cfg, seed=0)
    with pytest.raises(ValueError, match=f"expected {D} features, got {D + 1}"):
        bandit.select_action(np.ones(D + 1))
    with pytest.raises(ValueError, match=f"expected {D} features"):
        bandit.update(np.ones(D - 1), 0, 1.0)
    with pytest.raises(ValueError, match="NaN or infinity"):
        bandit.update([np.nan] * D, 0, 1.0)
    algo = make_algorithm(cfg)
    snap = algo.snapshot(PolicyState(arms={}), ["a", "b"], D)
    with pytest.raises(ValueError, match=rf"expects \({D},\)"):
        algo.select(snap, np.ones(D + 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match="out of range"):
        algo.select(snap, np.ones(D), np.random.default_rng(0), offered=[0, 5])


# -- checks specific to one algorithm --------------------------------------------------------


def test_ts_probabilities_are_win_probabilities():
    """TS's reported distribution estimates P(arm has the top posterior draw)."""
    cfg = ALGORITHMS["ts"]
    bandit = learned_bandit(cfg, seed=4, rounds=60)
    snap, algo = bandit._snapshot(), bandit.algorithm
    x = LinearSimulator(K, D, seed=4).stream(1).contexts[0]
    rng = np.random.default_rng(0)
    mean = snap.theta @ x
    sd = algo.scale * np.sqrt(np.einsum("i,kij,j->k", x, snap.a_inv, x))
    draws = mean + sd * rng.standard_normal((400_000, K))
    truth = np.bincount(draws.argmax(axis=1), minlength=K) / len(draws)
    truth = (1 - algo.epsilon) * truth + algo.epsilon / K
    estimates = np.mean([algo.probabilities(snap, x, rng) for _ in range(400)], axis=0)
    np.testing.assert_allclose(estimates, truth, atol=0.01)
