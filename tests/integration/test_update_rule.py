"""One statistics update rule, every place that applies it: same batches, same statistics.

The rule lives in ``policy_store._state``: ``aggregate`` turns a batch of observations into one
delta per arm and ``ArmStats.updated`` / ``apply_deltas`` add it (``old·γ^Δn + Δ``), component
sums included (with the legacy rule: observations without components, then with them), and
each batch moves the multiplier, λ ← max(0, λ + δ), when it has a fresh observation.
``reference`` below applies it directly; every entry of ``APPLIERS`` must end with the same
statistics and λ for the same sequence of batches (several arms, weights, forgetting γ < 1,
several batches, ids repeated inside a batch and across batches, observations with and
without components, a state learnt before components then fed component batches).
``RedisPolicyStore`` runs the rule in ``apply.lua``: this test is what ties the script to it.

To check another store or in-process learner against the rule, add one function to
``APPLIERS``: it gets the pytest ``request`` (for fixtures such as ``redis_store``), a policy
config and the batches, and returns the final ``PolicyState``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from policy_store import (
    COMPONENTS,
    ArmStats,
    InMemoryPolicyStore,
    Observation,
    PolicyConfig,
    PolicyState,
    PolicyStore,
    aggregate,
    apply_deltas,
    make_config,
)

Batch = tuple[list[Observation], float]  # observations, dual delta
Batches = list[Batch]
Applier = Callable[[pytest.FixtureRequest, PolicyConfig, Batches], PolicyState]
SEEDS = range(16)
ARMS = ("a", "b", "c", "d")
#: how a scenario's observations carry components, by seed
MODES = ("none", "all", "legacy", "mixed")


def reference(config: PolicyConfig, batches: Batches) -> PolicyState:
    """The rule itself, with the store contract's dedupe: an id counts once, first time seen."""
    seen: set[str] = set()
    state: dict[str, ArmStats] = {}
    dual = 0.0
    for batch, dual_delta in batches:
        fresh = []
        for obs in batch:
            if obs.decision_id not in seen:
                seen.add(obs.decision_id)
                fresh.append(obs)
        deltas = aggregate(fresh, config.n_features)
        state = apply_deltas(state, deltas, config.algorithm.forgetting)
        if fresh:
            dual = max(0.0, dual + dual_delta)
    return PolicyState(arms=state, dual=dual)


def _through_store(store: PolicyStore, config: PolicyConfig, batches: Batches) -> PolicyState:
    store.create(config)
    for batch, dual_delta in batches:
        store.apply(config.name, batch, dual_delta=dual_delta)
    return store.read_state(config.name)


def in_memory(request, config, batches):
    return _through_store(InMemoryPolicyStore(), config, batches)


def redis(request, config, batches):
    return _through_store(request.getfixturevalue("redis_store"), config, batches)


APPLIERS: dict[str, Applier] = {"in_memory": in_memory, "redis": redis}


def scenario(seed: int) -> tuple[PolicyConfig, Batches]:
    """A random policy and sequence of batches; the seed picks γ, d, sizes, weights, repeats,
    dual deltas and how observations carry components (``MODES``)."""
    rng = np.random.default_rng(seed)
    mode = MODES[seed % len(MODES)]
    d = int(rng.integers(1, 6))
    gamma = float(rng.choice([1.0, 0.99, 0.9, 0.5]))
    config = make_config(
        name=f"rule{seed}", arms=list(ARMS), n_features=d, algorithm={"forgetting": gamma}
    )
    used = ARMS[: int(rng.integers(2, len(ARMS) + 1))]  # some arms may never get data
    batches: Batches = []
    ids = 0
    n_batches = int(rng.integers(3, 9))
    for i in range(n_batches):
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
                    _components(rng, mode, i, n_batches),
                )
            )
        dual_delta = float(rng.choice([0.0, rng.normal()]))
        if rng.random() < 0.2:  # the same batch delivered twice
            batches.append((list(batch), dual_delta))
        batches.append((batch, dual_delta))
    return config, batches


def _components(rng, mode: str, batch: int, n_batches: int) -> tuple[float, ...] | None:
    carries = {
        "none": False,
        "all": True,
        "legacy": batch >= n_batches // 2,  # learnt before components, then with them
        "mixed": rng.random() < 0.6,
    }[mode]
    return tuple(rng.uniform(-1.0, 2.0, size=len(COMPONENTS)).tolist()) if carries else None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("applier", list(APPLIERS))
def test_applier_follows_the_update_rule(request, applier, seed):
    config, batches = scenario(seed)
    expected = reference(config, batches)
    state = APPLIERS[applier](request, config, batches)
    assert state.dual == pytest.approx(expected.dual, rel=1e-12, abs=1e-12)
    got = state.arms
    assert sorted(got) == sorted(expected.arms)
    for arm, want in expected.arms.items():
        close(got[arm].xx, want.xx, arm)
        close(got[arm].b, want.b, arm)
        assert got[arm].n == pytest.approx(want.n, rel=1e-12, abs=1e-12), arm
        g, w = got[arm].components, want.components
        assert (g is None) == (w is None), arm
        if w is not None:
            for name in ("y", "s", "s2"):
                close(getattr(g, name), getattr(w, name), f"{arm} {name}")
            assert g.legacy == w.legacy, arm
            if w.legacy:
                close(g.xx, w.xx, f"{arm} xc")
                assert g.n == pytest.approx(w.n, rel=1e-12, abs=1e-12), arm


def close(got, want, what: str) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=what)


def test_scenarios_exercise_what_the_rule_must_handle():
    """Guards the test above against scenarios too tame to tell a wrong rule apart."""
    gammas, repeats, weights = set(), 0, set()
    kinds = {"none": 0, "implicit": 0, "legacy": 0}
    clipped = moved = 0
    for seed in SEEDS:
        config, batches = scenario(seed)
        gammas.add(config.algorithm.forgetting)
        ids = [o.decision_id for b, _ in batches for o in b]
        repeats += len(ids) - len(set(ids))
        weights.update(o.weight for b, _ in batches for o in b)
        assert len(batches) >= 3
        state = reference(config, batches)
        for st in state.arms.values():
            c = st.components
            kinds["none" if c is None else "legacy" if c.legacy else "implicit"] += 1
        lam = 0.0
        for _, delta in batches:
            clipped += lam + delta < 0
            lam = max(0.0, lam + delta)
        moved += state.dual > 0
    assert min(gammas) < 1.0 and len(gammas) >= 2
    assert repeats > 0 and len(weights) > 2
    assert min(kinds.values()) >= 3, kinds  # arms of every kind, legacy ones included
    assert clipped > 0 and moved > 0  # λ ≥ 0 binds in some scenarios, λ moves in others


def test_reference_is_not_trivially_equal_to_a_plain_sum():
    """With γ < 1 the rule differs from summing every observation: the check has teeth."""
    config, batches = next(scenario(s) for s in SEEDS if scenario(s)[0].algorithm.forgetting < 0.95)
    no_forgetting = config.algorithm.model_copy(update={"forgetting": 1.0})
    ruled = reference(config, batches).arms
    plain = reference(config.model_copy(update={"algorithm": no_forgetting}), batches).arms
    assert any(not np.allclose(ruled[a].b, plain[a].b) for a in ruled)
