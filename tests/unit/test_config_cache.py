"""The worker's config cache: a new arm is known from its first event, a wiped policy is
lost (kept, held), a recorded deletion is forgotten."""

from __future__ import annotations

from policy_store import InMemoryPolicyStore, make_config
from producers import DecisionEvent
from stream_app import ConfigCache, PolicyRecord, validate_decision


def _decision(arm: str) -> bytes:
    return DecisionEvent(
        decision_id="d1", policy="p", policy_version=0, timestamp=1.0, arms=("a", arm),
        arm=arm, propensity=0.5, features=(0.1, 0.2),
    ).to_bytes()  # fmt: skip


def test_an_arm_added_to_a_live_policy_is_known_from_its_first_event():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    cache = ConfigCache(store, reload_interval=60.0)
    assert cache.get("p").arms == ("a", "b")
    store.add_arm("p", "c")  # the cache has not refreshed
    ev, cfg = validate_decision(_decision("c"), cache, None, 2.0)
    assert ev.arm == "c" and "c" in cfg.arms and "c" in cache.get("p").arms


def test_reloads_for_unknown_arms_are_bounded_per_policy():
    calls = []
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    cache = ConfigCache(store, reload_interval=60.0)
    cache.get("p")
    real = store.get_config
    store.get_config = lambda name: calls.append(name) or real(name)
    for _ in range(100):
        try:
            validate_decision(_decision("bogus"), cache, None, 2.0)
        except Exception as exc:
            assert getattr(exc, "reason", None) == "unknown_arm"
    assert len(calls) == 1


def test_a_vanished_config_is_lost_and_kept_a_recorded_deletion_is_forgotten():
    store = InMemoryPolicyStore()
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    store.create(make_config(name="q", arms=["a", "b"], n_features=2))
    cache = ConfigCache(store)
    cache.refresh()
    store.delete("p")
    store.delete("q")
    cache.on_record(PolicyRecord("q", "delete", None, 1.0, 0.0))
    cache.refresh()
    assert cache.get("p") is not None and cache.get("q") is None  # the join goes on for p
    assert "rl-commons rebuild p" in cache.lost("p") and cache.lost("q") is None
    assert cache.waiting("p") is not None
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    assert cache.waiting("p") is None  # found again: its rewards apply
