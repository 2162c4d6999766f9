"""The worker's multiplier step (``stream_app._dual.DualTracker`` through ``Updater``): the
same rule as the in-process learner, weighted like the statistics, and free for weighted
policies."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from policy_store import (
    InMemoryPolicyStore,
    Objective,
    Observation,
    PolicyReader,
    RewardSpec,
    component_values,
    make_config,
    policy_dual_delta,
)
from producers._sources import InProcessSource, in_process_config
from stream_app._dual import DualTracker
from stream_app._rewards import make_reward
from stream_app._updater import Updater, to_observations

ARMS = ("gpt-4", "claude-3", "llama")
SPEC = RewardSpec(cost_cap=0.1, latency_cap_ms=2000.0)
OBJECTIVES = {
    "floor": (Objective(kind="quality_floor", quality_floor=0.8), None),
    # quality sd ≈ 0.19 with the errors: a margin of 0.05 has a target after ~60 gpt-4 outcomes
    "margin": (Objective(kind="quality_floor", quality_margin=0.05), "gpt-4"),
    "budget": (Objective(kind="budget", max_cost=0.03), None),
}


def world(seed: int, n: int):
    """(decision id, arm, features, raw outcome, cohort) of a small routing world."""
    rng = np.random.default_rng(seed)
    quality = {"gpt-4": 0.92, "claude-3": 0.85, "llama": 0.6}
    cost = {"gpt-4": 0.06, "claude-3": 0.03, "llama": 0.005}
    out = []
    for i in range(n):
        arm = ARMS[int(rng.integers(3))]
        x = (1.0, float(rng.normal()), float(rng.integers(2)))
        outcome = {
            "quality": float(np.clip(quality[arm] + 0.1 * rng.normal(), 0, 1)),
            "cost": cost[arm] * float(rng.uniform(0.5, 1.5)),
            "latency": float(rng.uniform(100, 3000)),
        }
        if rng.random() < 0.03:
            outcome = {"error": True}
        out.append((f"d{i}", arm, x, outcome, "rl" if rng.random() < 0.7 else "baseline"))
    return out


def reward(policy: str, i: str, arm: str, x, outcome, cohort: str = "rl"):
    decision = {
        "decision_id": i,
        "policy": policy,
        "policy_version": 0,
        "arm": arm,
        "features": x,
        "propensity": 0.5,
        "timestamp": 1.0,
        "cohort": cohort,
    }
    return make_reward(SPEC, decision, outcome, reason="complete", now=2.0)


def config(kind: str):
    objective, baseline = OBJECTIVES[kind]
    return in_process_config("p", ARMS, 3, reward=SPEC, objective=objective, baseline_arm=baseline)


@pytest.mark.parametrize("kind", sorted(OBJECTIVES))
@pytest.mark.parametrize("seed", range(3))
def test_worker_moves_lambda_exactly_like_the_in_process_learner(kind, seed):
    cfg = config(kind)
    local = InProcessSource("p", lambda d: cfg, lambda r: r, 3)
    store = InMemoryPolicyStore()
    store.create(cfg)
    updater = Updater(store)
    lambdas = []
    for i, arm, x, outcome, _ in world(seed, 250):
        local.learn(i, arm, x, outcome)
        updater.apply([reward("p", i, arm, x, outcome)])  # a batch of one: the same snapshot
        ours, theirs = store.read_state("p").dual, local.store.read_state("p").dual
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
        lambdas.append(ours)
    assert max(lambdas) > 0.0  # the rule was exercised, not just 0 == 0


def one_by_one(cfg, store_obs, batch_obs, learned):
    """λ after ``batch_obs`` learnt one at a time, each step on a fresh snapshot."""
    store = InMemoryPolicyStore()
    store.create(cfg)
    store.apply("p", store_obs)
    reader = PolicyReader(store, "p", start=False, notify=False)
    for o, move in zip(batch_obs, learned, strict=True):
        reader.refresh()
        step = policy_dual_delta(cfg, reader.view.snapshot, [o], [move])
        store.apply("p", [o], dual_delta=step)
    return store.read_state("p").dual


@pytest.mark.parametrize("kind", sorted(OBJECTIVES))
@pytest.mark.parametrize("start", [40, 200])
def test_a_batch_moves_lambda_as_its_outcomes_learnt_one_by_one(kind, start):
    """Early (few observations: the buffer shrinks within the batch) and later, with a
    mixed batch (baseline-cohort rewards add evidence but do not step λ)."""
    cfg = config(kind)
    store = InMemoryPolicyStore()
    store.create(cfg)
    data = world(7, start + 300)
    weights = {"rl": 1.0, "baseline": 0.5}
    updater = Updater(store, cohort_weights=weights)
    head = [reward("p", i, a, x, o, "baseline") for i, a, x, o, _ in data[:start]]
    updater.apply(head)
    batch = [reward("p", i, a, x, o, c) for i, a, x, o, c in data[start:]]
    updater.apply(batch)
    seq = one_by_one(
        cfg,
        to_observations(head, weights, SPEC),
        to_observations(batch, weights, SPEC),
        [r.cohort == "rl" for r in batch],
    )
    assert seq > 0.0
    # renewed at every 1 % of evidence instead of every outcome: close, not exact
    assert store.read_state("p").dual == pytest.approx(seq, rel=0.01)


def test_each_step_is_projected_on_zero_like_one_by_one():
    """A slack stretch cannot bank credit against a later violation in the same batch."""
    objective = Objective(kind="budget", max_cost=0.03, confidence=0.5)  # no buffer
    cfg = in_process_config("p", ARMS, 3, reward=SPEC, objective=objective)
    store = InMemoryPolicyStore()
    store.create(cfg)
    v = [component_values(SPEC, quality=0.9, cost=c, latency=100.0) for c in (0.0, 0.05)]
    obs = [
        Observation(f"d{i}", "gpt-4", (1.0, 0.0, 0.0), 0.5, components=v[i >= 10])
        for i in range(20)
    ]
    step = DualTracker(store).delta(store.head("p"), obs)
    # 10 slack outcomes leave λ at 0 (their sum, -3η, is not banked); the 10 violations
    # then step it by η·(0.5 - 0.3) each
    assert step == pytest.approx(10 * cfg.objective.step * 0.2)


class CountingStore(InMemoryPolicyStore):
    def __init__(self) -> None:
        super().__init__()
        self.state_reads = 0

    def read_state(self, name):
        self.state_reads += 1
        return super().read_state(name)


def test_weighted_policies_cost_no_snapshot_and_leave_lambda_at_zero():
    store = CountingStore()
    store.create(make_config(name="p", arms=ARMS, n_features=3, reward=SPEC))
    updater = Updater(store)
    for k in range(5):
        updater.apply([reward("p", i, a, x, o) for i, a, x, o, _ in world(k, 50)])
    assert store.state_reads == 0 and updater.dual.rebuilds == 0
    assert store.read_state("p").dual == 0.0


def test_the_state_is_read_only_when_another_writer_the_config_or_the_evidence_moved():
    store = CountingStore()
    store.create(config("floor"))
    tracker = DualTracker(store)
    data = world(3, 700)
    obs = to_observations([reward("p", i, a, x, o) for i, a, x, o, _ in data], spec=SPEC)
    store.apply("p", obs[:300])

    def apply(part):
        res = store.apply("p", part, dual_delta=tracker.delta(store.head("p"), part))
        tracker.applied("p", res.version, complete=True)

    apply(obs[300:301])
    assert tracker.rebuilds == 1 and store.state_reads == 1
    apply(obs[301:302])  # continues from the tracked evidence: no read
    assert tracker.rebuilds == 1
    store.apply("p", obs[302:303])  # another writer: the version moved under the tracker
    tracker.delta(store.head("p"), obs[303:304])
    assert tracker.rebuilds == 2 and store.state_reads == 2
    tracker.delta(store.head("p"), obs[303:304])  # not applied (no ``applied``): read again
    assert tracker.rebuilds == 3
    apply(obs[303:304])
    apply(obs[304:600])  # the batch is folded into the tracked state as it goes
    apply(obs[600:601])
    assert tracker.rebuilds == 4
    store.update_config("p", objective=Objective(kind="quality_floor", quality_floor=0.95))
    tracker.delta(store.head("p"), obs[601:602])  # the config moved: rebuilt under it
    assert tracker.rebuilds == 5
    store.update_config("p", objective=Objective())  # weighted now: the steps are dropped
    assert tracker.delta(store.head("p"), obs[602:]) == 0.0 and tracker.rebuilds == 5
    assert tracker._steps == {}


def test_observations_without_components_do_not_move_lambda():
    store = InMemoryPolicyStore()
    store.create(config("floor"))
    tracker = DualTracker(store)
    scalar = to_observations([reward("p", i, a, x, o) for i, a, x, o, _ in world(1, 5)])
    assert tracker.delta(store.head("p"), scalar) == 0.0 and tracker.rebuilds == 0


def test_the_in_process_rule_is_the_shared_function():
    cfg = config("floor")
    store = InMemoryPolicyStore()
    store.create(cfg)
    reader = PolicyReader(store, "p", start=False, notify=False)
    reader.refresh()
    v = component_values(SPEC, quality=0.5, cost=0.01, latency=100.0)
    o = Observation("d", "llama", (1.0, 0.0, 0.0), 0.5, components=v)
    step = cfg.objective.step
    assert policy_dual_delta(cfg, reader.view.snapshot, [o]) == pytest.approx(step * 0.3)
    weighted = make_config(name="w", arms=ARMS, n_features=3)
    assert policy_dual_delta(weighted, reader.view.snapshot, [o]) == 0.0


@pytest.mark.parametrize("kind", sorted(OBJECTIVES))
def test_baseline_and_shadow_traffic_update_the_statistics_but_not_lambda(kind):
    cfg = config(kind)
    store = InMemoryPolicyStore()
    store.create(cfg)
    updater = Updater(store)
    data = world(3, 300)
    for k in range(0, 150, 10):  # batches: the constraint needs data before it has a target
        updater.apply([reward("p", i, a, x, o, "rl") for i, a, x, o, _ in data[k : k + 10]])
    moved = store.read_state("p")
    assert moved.dual > 0.0  # the learned cohort moves it
    n_before = sum(st.n for st in moved.arms.values())
    for cohort in ("baseline", "shadow"):
        updater.apply(
            [reward("p", f"{cohort}{i}", a, x, o, cohort) for i, a, x, o, _ in data[150:]]
        )
    after = store.read_state("p")
    assert after.dual == moved.dual
    assert sum(st.n for st in after.arms.values()) == pytest.approx(n_before + 300)


def test_an_empty_batch_moves_lambda_alone_and_a_replayed_one_does_not():
    """How an operator resets λ (``rl-commons objective --reset-multiplier``)."""
    store = InMemoryPolicyStore()
    store.create(config("floor"))
    obs = to_observations([reward("p", i, a, x, o) for i, a, x, o, _ in world(2, 5)], spec=SPEC)
    store.apply("p", obs, dual_delta=3.0)
    version = store.read_state("p").version
    store.apply("p", obs, dual_delta=5.0)  # replayed: nothing moves
    assert store.read_state("p").dual == 3.0 and store.read_state("p").version == version
    store.apply("p", [], dual_delta=-sys.float_info.max)
    state = store.read_state("p")
    assert state.dual == 0.0 and state.version == version + 1
    assert sum(st.n for st in state.arms.values()) == 5.0
