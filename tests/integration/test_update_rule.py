"""One statistics update rule, every place that applies it: same batches, same xx, b and n.

The rule lives in ``policy_store._state``: ``aggregate`` turns a batch of observations into one
delta per arm and ``ArmStats.updated`` / ``apply_deltas`` add it (``old·γ^Δn + Δ``).
``REFERENCE`` below applies it directly; every entry of ``APPLIERS`` must end with the same
statistics for the same sequence of batches (several arms, weights, forgetting γ < 1, several
batches, ids repeated inside a batch and across batches). ``RedisPolicyStore`` runs the rule
in ``apply.lua``: this test is what ties the script to the rule.

To check another store or in-process learner against the rule, add one function to
``APPLIERS``: it gets the pytest ``request`` (for fixtures such as ``redis_store``), a policy
config and the batches, and returns the final statistics per arm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest

from policy_store import (
    ArmStats,
    InMemoryPolicyStore,
    Observation,
    PolicyConfig,
    PolicyStore,
    aggregate,
    apply_deltas,
    make_config,
)

Batches = list[list[Observation]]
Applier = Callable[[pytest.FixtureRequest, PolicyConfig, Batches], Mapping[str, ArmStats]]
SEEDS = range(8)
ARMS = ("a", "b", "c", "d")


def reference(config: PolicyConfig, batches: Batches) -> dict[str, ArmStats]:
    """The rule itself, with the store contract's dedupe: an id counts once, first time seen."""
    seen: set[str] = set()
    state: dict[str, ArmStats] = {}
    for batch in batches:
        fresh = []
        for obs in batch:
            if obs.decision_id not in seen:
                seen.add(obs.decision_id)
                fresh.append(obs)
        deltas = aggregate(fresh, config.n_features)
        state = apply_deltas(state, deltas, config.algorithm.forgetting)
    return state


def _through_store(store: PolicyStore, config: PolicyConfig, batches: Batches) -> dict:
    store.create(config)
    for batch in batches:
        store.apply(config.name, batch)
    return dict(store.read_state(config.name).arms)


def in_memory(request, config, batches):
    return _through_store(InMemoryPolicyStore(), config, batches)


def redis(request, config, batches):
    return _through_store(request.getfixturevalue("redis_store"), config, batches)


APPLIERS: dict[str, Applier] = {"in_memory": in_memory, "redis": redis}


def scenario(seed: int) -> tuple[PolicyConfig, Batches]:
    """A random policy and sequence of batches; the seed picks γ, d, sizes, weights and repeats."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 6))
    gamma = float(rng.choice([1.0, 0.99, 0.9, 0.5]))
    config = make_config(
        name=f"rule{seed}", arms=list(ARMS), n_features=d, algorithm={"forgetting": gamma}
    )
    used = ARMS[: int(rng.integers(2, len(ARMS) + 1))]  # some arms may never get data
    batches: Batches = []
    ids = 0
    for _ in range(int(rng.integers(3, 9))):
        batch = []
        for _ in range(int(rng.integers(1, 30))):
            repeat = rng.random()
            if repeat < 0.1 and ids:  # an id of an earlier batch (or of this one)
                decision_id = f"d{int(rng.integers(ids))}"
            else:
                decision_id, ids = f"d{ids}", ids + 1
            batch.append(
                Observation(
                    decision_id,
                    str(rng.choice(used)),
                    tuple((rng.normal(size=d) * rng.choice([0.1, 1.0, 10.0])).tolist()),
                    float(rng.normal()),
                    float(rng.choice([1.0, rng.uniform(0.05, 2.0)])),
                )
            )
        if rng.random() < 0.2:  # the same batch delivered twice
            batches.append(list(batch))
        batches.append(batch)
    return config, batches


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("applier", list(APPLIERS))
def test_applier_follows_the_update_rule(request, applier, seed):
    config, batches = scenario(seed)
    expected = reference(config, batches)
    got = APPLIERS[applier](request, config, batches)
    assert sorted(got) == sorted(expected)
    for arm, want in expected.items():
        np.testing.assert_allclose(got[arm].xx, want.xx, rtol=1e-12, atol=1e-12, err_msg=arm)
        np.testing.assert_allclose(got[arm].b, want.b, rtol=1e-12, atol=1e-12, err_msg=arm)
        assert got[arm].n == pytest.approx(want.n, rel=1e-12, abs=1e-12), arm


def test_scenarios_exercise_what_the_rule_must_handle():
    """Guards the test above against scenarios too tame to tell a wrong rule apart."""
    gammas, repeats, weights = set(), 0, set()
    for seed in SEEDS:
        config, batches = scenario(seed)
        gammas.add(config.algorithm.forgetting)
        ids = [o.decision_id for b in batches for o in b]
        repeats += len(ids) - len(set(ids))
        weights.update(o.weight for b in batches for o in b)
        assert len(batches) >= 3
    assert min(gammas) < 1.0 and len(gammas) >= 2
    assert repeats > 0 and len(weights) > 2


def test_reference_is_not_trivially_equal_to_a_plain_sum():
    """With γ < 1 the rule differs from summing every observation: the check has teeth."""
    config, batches = next(scenario(s) for s in SEEDS if scenario(s)[0].algorithm.forgetting < 0.95)
    no_forgetting = config.algorithm.model_copy(update={"forgetting": 1.0})
    ruled = reference(config, batches)
    plain = reference(config.model_copy(update={"algorithm": no_forgetting}), batches)
    assert any(not np.allclose(ruled[a].b, plain[a].b) for a in ruled)
