"""The seed's in-process API: ``policy_store.ContextualBandit`` (an ``RLAgent``), its
learning quality, and that it learns by the same update rule as the stores."""

from __future__ import annotations

import numpy as np
import pytest

import policy_store
from policy_store import (
    AlgorithmConfig,
    ArmStats,
    ContextualBandit,
    InMemoryPolicyStore,
    Observation,
    RLAgent,
    make_config,
)
from policy_store.simulator import LinearSimulator

SEEDS = (0, 1, 2, 3, 4)


def play(seed: int, rounds: int = 2000, n_arms: int = 5, n_features: int = 12) -> dict:
    """Regret per round of the default bandit and of uniform random on one seeded stream."""
    stream = LinearSimulator(n_arms, n_features, seed=seed).stream(rounds)
    bandit = ContextualBandit(n_arms, n_features, seed=seed)
    served = np.empty(rounds, dtype=int)
    for t in range(rounds):
        x = stream.contexts[t]
        served[t] = bandit.select_action(x)
        bandit.update(x, int(served[t]), float(stream.rewards[t, served[t]]))
    uniform = np.random.default_rng(seed).integers(n_arms, size=rounds)
    return {
        "bandit": float(stream.regret(served).mean()),
        "uniform": float(stream.regret(uniform).mean()),
        "bandit_last_quarter": float(stream.regret(served)[-rounds // 4 :].mean()),
    }


@pytest.fixture(scope="module")
def regrets() -> dict[int, dict]:
    out = {seed: play(seed) for seed in SEEDS}
    for seed, r in out.items():
        print(
            f"seed {seed}: regret/round default ContextualBandit {r['bandit']:.4f} "
            f"(last quarter {r['bandit_last_quarter']:.4f}) vs uniform random {r['uniform']:.4f}"
        )
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_default_bandit_regret_far_below_uniform_random(regrets, seed):
    r = regrets[seed]
    # far lower: under a fifth of uniform's regret over the whole run (learning included)
    assert r["bandit"] < 0.2 * r["uniform"], r
    # and it keeps improving: the last quarter is better than the average
    assert r["bandit_last_quarter"] < r["bandit"], r


def test_regret_summary_over_seeds(regrets):
    ours = np.mean([r["bandit"] for r in regrets.values()])
    uniform = np.mean([r["uniform"] for r in regrets.values()])
    print(f"mean over seeds {SEEDS}: default {ours:.4f} vs uniform {uniform:.4f}")
    assert ours < 0.15 * uniform


def test_select_action_returns_valid_arm_and_logs_propensity():
    bandit = ContextualBandit(3, 2, seed=0)
    a = bandit.select_action([0.5, -1.0])
    assert isinstance(a, int) and 0 <= a < 3
    assert 0 < bandit.last_propensity <= 1
    p = bandit.probabilities([0.5, -1.0])
    assert p.shape == (3,) and abs(p.sum() - 1) < 1e-12


def test_learns_the_better_arm_per_context():
    bandit = ContextualBandit(2, 2, seed=1)
    contexts = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    rng = np.random.default_rng(1)
    for _ in range(400):
        i = int(rng.integers(2))
        a = bandit.select_action(contexts[i])
        bandit.update(contexts[i], a, 1.0 if a == i else 0.0)
    for i, x in enumerate(contexts):
        assert bandit.probabilities(x).argmax() == i


def test_update_refuses_bad_action_and_reward():
    bandit = ContextualBandit(2, 2, seed=0)
    with pytest.raises(ValueError, match="out of range 0..1"):
        bandit.update([1.0, 0.0], 2, 1.0)
    with pytest.raises(ValueError, match="finite"):
        bandit.update([1.0, 0.0], 0, float("inf"))


def test_rl_agent_is_abstract_and_bandit_is_one():
    with pytest.raises(TypeError):
        RLAgent()  # type: ignore[abstract]
    assert isinstance(ContextualBandit(2, 2), RLAgent)
    assert policy_store.ContextualBandit is ContextualBandit
    assert {"ContextualBandit", "RLAgent"} <= set(policy_store.__all__)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_updates_follow_the_store_update_rule(gamma):
    """Learning in process equals applying each observation to a store as a batch of one."""
    n_arms, d = 3, 4
    bandit = ContextualBandit(n_arms, d, algorithm=AlgorithmConfig(forgetting=gamma), seed=0)
    store = InMemoryPolicyStore()
    store.create(
        make_config(
            name="p",
            arms=[str(k) for k in range(n_arms)],
            n_features=d,
            algorithm={"forgetting": gamma},
        )
    )
    rng = np.random.default_rng(1)
    for t in range(300):
        x = rng.normal(size=d)
        a = bandit.select_action(x)
        r = float(rng.normal())
        bandit.update(x, a, r, next_state=None)  # next_state: RLAgent signature, ignored
        store.apply("p", [Observation(f"d{t}", str(a), tuple(x.tolist()), r)])
    stored = store.read_state("p").arms
    assert len(stored) >= 2
    for arm, ours in bandit.state.arms.items():
        theirs = stored.get(arm, ArmStats.zeros(d))
        np.testing.assert_allclose(ours.xx, theirs.xx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.b, theirs.b, rtol=1e-12, atol=1e-12)
        assert ours.n == pytest.approx(theirs.n, rel=1e-12)


def test_same_seed_same_actions_and_update_is_what_changes_them():
    xs = np.random.default_rng(2).normal(size=(50, 3))
    a, b = ContextualBandit(4, 3, seed=7), ContextualBandit(4, 3, seed=7)
    assert [a.select_action(x) for x in xs] == [b.select_action(x) for x in xs]
    before = a.probabilities(xs[0])
    for _ in range(30):
        for arm in range(4):
            a.update(xs[0], arm, 1.0 if arm == 2 else 0.0)
    after = a.probabilities(xs[0])
    assert after[2] > before[2] and after.argmax() == 2
    np.testing.assert_array_equal(b.probabilities(xs[0]), before)  # b did not learn
