"""PolicyReader refuses a snapshot holding a number that is not finite (no poison pill)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from policy_store import ArmStats, InMemoryPolicyStore, Observation, PolicyReader, make_config


def _store_with_data() -> InMemoryPolicyStore:
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    store.apply("p", [Observation(f"d{i}", "ab"[i % 2], (1.0, 0.5), 0.7) for i in range(10)])
    return store


def _poison(store: InMemoryPolicyStore, value: float, where: str = "b") -> None:
    """Write a non-finite number into arm a's sums, as a manual edit would."""
    old = store.read_state("p").arms["a"]
    xx, b = np.array(old.xx), np.array(old.b)
    (b if where == "b" else xx)[0] = value
    store._states["p"]["a"] = ArmStats.of(xx, b, old.n, old.components)
    store._bump("p")


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["b", "xx"])
def test_a_non_finite_state_is_refused_and_the_previous_snapshot_serves(value, where, caplog):
    store = _store_with_data()
    reader = PolicyReader(store, "p", seed=0, start=False)
    assert reader.refresh()
    good = reader.version
    _poison(store, value, where)
    with caplog.at_level(logging.WARNING, logger="policy_store._reader"):
        assert reader.refresh() is False
        assert reader.refresh() is False  # the same version: neither read nor logged again
    assert reader.version == good and reader.refused == 1
    assert len([r for r in caplog.records if "refused" in r.message]) == 1
    for seed in range(50):
        reader._rng = np.random.default_rng(seed)
        assert reader.select([1.0, 0.5]).arm in ("a", "b")


def test_a_reader_with_no_snapshot_yet_installs_nothing_from_a_poisoned_state():
    store = _store_with_data()
    _poison(store, np.inf)
    reader = PolicyReader(store, "p", seed=0, start=False)
    assert reader.refresh() is False
    assert reader.view is None and reader.refused == 1
    assert reader.staleness() == float("inf")  # the selector serves its baseline


def test_refused_versions_let_staleness_grow_and_a_clean_version_is_installed_again():
    now = [0.0]
    store = _store_with_data()
    reader = PolicyReader(store, "p", seed=0, start=False, clock=lambda: now[0])
    reader.refresh()
    _poison(store, np.inf)
    now[0] = 10.0
    reader.refresh()
    assert reader.staleness() == 10.0  # not confirmed current: the bound applies
    store.reset("p")  # an operator cleans the state
    assert reader.refresh() and reader.version == store.version("p")
    assert reader.staleness() == 0.0


def test_refresh_applied_refuses_a_non_finite_arm_too():
    store = _store_with_data()
    reader = PolicyReader(store, "p", seed=0, start=False)
    reader.refresh()
    good = reader.version
    _poison(store, np.inf)
    assert reader.refresh_applied(["a"], good + 1) is False
    assert reader.version == good and reader.refused == 1


def test_a_non_finite_component_sum_or_multiplier_is_refused():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    obs = [
        Observation(f"d{i}", "ab"[i % 2], (1.0, 0.5), 0.7, 1.0, (0.8, 0.1, 0.2, 0.0, 0.0))
        for i in range(10)
    ]
    store.apply("p", obs)
    reader = PolicyReader(store, "p", seed=0, start=False)
    assert reader.refresh()
    old = store.read_state("p").arms["a"]
    c = old.components
    y = np.array(c.y)
    y[0, 0] = np.nan
    store._states["p"]["a"] = ArmStats.of(old.xx, old.b, old.n, type(c).of(y, c.s, c.s2))
    store._bump("p")
    assert reader.refresh() is False and reader.refused == 1
    store._states["p"]["a"] = old
    store._duals["p"] = np.inf
    store._bump("p")
    assert reader.refresh() is False and reader.refused == 2
