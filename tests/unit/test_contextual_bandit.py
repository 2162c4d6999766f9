"""The seed's in-process API (``ContextualBandit``, ``RLAgent``) and its learning quality."""

from __future__ import annotations

import numpy as np
import pytest

import policy_store
from policy_store import ContextualBandit, RLAgent
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


def test_custom_agent_implements_rl_agent():
    class Greedy(RLAgent):
        def __init__(self) -> None:
            self.totals = [0.0, 0.0]

        def select_action(self, state):
            return int(np.argmax(self.totals))

        def update(self, state, action, reward, next_state=None):
            self.totals[action] += reward

    agent = Greedy()
    agent.update(None, 1, 1.0, None)
    assert agent.select_action(None) == 1
