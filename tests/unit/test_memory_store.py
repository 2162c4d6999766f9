"""InMemoryPolicyStore housekeeping and PolicyReader's incremental refresh after an apply."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import InMemoryPolicyStore, Observation, PolicyReader, make_config

ARMS = ("a", "b", "c")


def _store_and_reader(**config):
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=list(ARMS), n_features=3, **config))
    reader = PolicyReader(store, "p", start=False, notify=False)
    reader.refresh()
    return store, reader


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("forgetting", [1.0, 0.9])
def test_refresh_applied_equals_a_full_rebuild(seed, forgetting):
    rng = np.random.default_rng(seed)
    store, reader = _store_and_reader(algorithm={"name": "linucb", "forgetting": forgetting})
    for i in range(30):
        arm = ARMS[int(rng.integers(3))]
        obs = Observation(str(i), arm, tuple(rng.random(3)), float(rng.random()))
        version = store.apply("p", [obs]).version
        assert reader.refresh_applied((arm,), version)
    fresh = PolicyReader(store, "p", start=False, notify=False)
    fresh.refresh()
    got, want = reader.view.snapshot, fresh.view.snapshot
    assert got.version == want.version == 30
    assert got.updated_at == want.updated_at
    for name in ("theta", "a_inv", "chol", "n", "stacked", "prior"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-12)


OBJECTIVES = {
    "weighted": {},
    "floor": {"objective": {"kind": "quality_floor", "quality_floor": 0.7}},
    "budget": {"objective": {"kind": "budget", "max_cost": 0.3}},
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("legacy", [False, True])
def test_refresh_applied_equals_a_full_rebuild_with_components_and_a_moving_multiplier(
    seed, objective, legacy
):
    """Component sums, λ moving with (almost) every apply, and optionally arms with data from
    before components: the incrementally refreshed snapshot is the rebuilt one."""
    rng = np.random.default_rng(seed)
    store, reader = _store_and_reader(**OBJECTIVES[objective])
    duals = set()
    for i in range(40):
        arm = ARMS[int(rng.integers(3))]
        values = None
        if not legacy or i >= 10:  # the first ten carry no components
            q, c = float(rng.random()), float(rng.random())
            values = (q, c, float(rng.random()), 0.0, 1.0)
        obs = Observation(str(i), arm, tuple(rng.random(3)), float(rng.random()), 1.0, values)
        delta = float(rng.normal()) if objective != "weighted" and i % 5 else 0.0
        version = store.apply("p", [obs], dual_delta=delta).version
        assert reader.refresh_applied((arm,), version)
        duals.add(reader.view.snapshot.dual)
    assert len(duals) > 5 if objective != "weighted" else duals == {0.0}
    fresh = PolicyReader(store, "p", start=False, notify=False)
    fresh.refresh()
    got, want = reader.view.snapshot, fresh.view.snapshot
    assert got.version == want.version == 40
    assert got.dual == want.dual == store.read_state("p").dual
    assert got.legacy.tolist() == want.legacy.tolist()
    names = ("theta", "a_inv", "chol", "n", "stacked", "prior", "weights", "components")
    for name in names + ("comp_y", "comp_s", "comp_xx", "comp_n"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-10)


def test_refresh_applied_falls_back_to_a_full_refresh_when_versions_were_skipped():
    store, reader = _store_and_reader()
    store.apply("p", [Observation("1", "a", (1.0, 0.0, 0.0), 1.0)])  # the reader missed this
    version = store.apply("p", [Observation("2", "b", (0.0, 1.0, 0.0), 1.0)]).version
    assert reader.refresh_applied(("b",), version)
    assert reader.version == 2
    assert reader.view.snapshot.n.tolist() == [1.0, 1.0, 0.0]  # arm a is in too


def test_refresh_applied_picks_up_a_config_change():
    store, reader = _store_and_reader()
    store.update_config("p", arms=(*ARMS, "d"))
    version = store.apply("p", [Observation("1", "d", (1.0, 0.0, 0.0), 1.0)]).version
    assert reader.refresh_applied(("d",), version)
    assert reader.view.snapshot.arms == (*ARMS, "d")
    assert reader.view.snapshot.n.tolist() == [0.0, 0.0, 0.0, 1.0]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_dedupe_ids_are_purged_and_live_ones_kept():
    from policy_store._memory import PURGE_MIN_GROWTH

    clock = _Clock()
    store = InMemoryPolicyStore(clock=clock)
    store.create(make_config(name="p", arms=["a"], n_features=1, dedupe_ttl_seconds=60))
    n = 5 * PURGE_MIN_GROWTH
    for i in range(n):
        store.apply("p", [Observation(str(i), "a", (1.0,), 1.0)])
        clock.now += 2.0  # 30 ids live at any time
    assert len(store._seen["p"]) <= PURGE_MIN_GROWTH  # not one entry per outcome
    # ids within the TTL are still refused, expired ones are accepted again
    assert store.apply("p", [Observation(str(n - 1), "a", (1.0,), 1.0)]).duplicates == 1
    assert store.apply("p", [Observation("0", "a", (1.0,), 1.0)]).applied == 1
    assert store.read_state("p").arms["a"].n == n + 1
