"""Objectives over the Redis store: a config change reweights without relearning, and the
multiplier moved by an apply reaches every reader with its snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import (
    InMemoryPolicyStore,
    Objective,
    Observation,
    PolicyReader,
    RewardSpec,
    component_values,
    constraint_status,
    make_config,
    objective_weights,
)

pytestmark = pytest.mark.integration

ARMS = ("a", "b", "c")


def observations(spec: RewardSpec, with_components: bool, n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        q, c, lat = rng.uniform(0, 1, 3)
        err = bool(rng.random() < 0.05)
        out.append(
            Observation(
                f"{seed}-{i}",
                ARMS[i % 3],
                tuple(rng.normal(size=3).tolist()),
                spec.reward(q, c, lat, err),
                components=component_values(spec, q, c, lat, err) if with_components else None,
            )
        )
    return out


def test_reward_weights_changed_in_redis_take_effect_without_relearning(redis_store):
    old, new = RewardSpec(), RewardSpec(quality_weight=0.9, cost_weight=0.1, latency_weight=0.0)
    redis_store.create(make_config(name="o", arms=ARMS, n_features=3, reward=old))
    redis_store.apply("o", observations(old, True))
    reader = PolicyReader(redis_store, "o", start=False, notify=False)
    assert reader.refresh()
    redis_store.update_config("o", reward=new)
    assert reader.refresh()
    scratch = InMemoryPolicyStore()
    scratch.create(make_config(name="o", arms=ARMS, n_features=3, reward=new))
    scratch.apply("o", observations(new, False))
    expected = PolicyReader(scratch, "o", start=False, notify=False)
    expected.refresh()
    diff = reader.view.snapshot.theta - expected.view.snapshot.theta
    assert np.abs(diff).max() < 1e-9


def test_every_reader_sees_the_multiplier_moved_by_an_apply(redis_store):
    spec = RewardSpec()
    objective = Objective(kind="quality_floor", quality_margin=0.01)
    config = make_config(name="o", arms=ARMS, n_features=3, objective=objective, baseline_arm="a")
    redis_store.create(config)
    batch = observations(spec, True)
    redis_store.apply("o", batch[:100], dual_delta=2.5)
    version = redis_store.apply("o", batch[100:], dual_delta=-0.5).version
    readers = [PolicyReader(redis_store, "o", start=False, notify=False) for _ in range(2)]
    for reader in readers:
        assert reader.refresh() and reader.version == version
        snap = reader.view.snapshot
        assert snap.dual == pytest.approx(2.0)
        w = objective_weights(objective, spec, 2.0)
        assert np.allclose(snap.weights, w)
        assert np.allclose(snap.theta, np.einsum("c,kcd->kd", w, snap.components), atol=1e-12)
        status = constraint_status(reader.config, snap)
        assert status.n == 200 and status.buffer > 0 and status.bound > status.target
    # projection at 0
    redis_store.apply("o", observations(spec, True, n=3, seed=9), dual_delta=-10.0)
    assert readers[0].refresh() and readers[0].view.snapshot.dual == 0.0
