"""One contract, two stores: InMemoryPolicyStore and RedisPolicyStore (real redis-server)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from policy_store import (
    ConfigError,
    InMemoryPolicyStore,
    InvalidDeltaError,
    Observation,
    PolicyReader,
    UnknownArmError,
    UnknownPolicyError,
    aggregate,
    make_config,
)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return InMemoryPolicyStore()
    return request.getfixturevalue("redis_store")


def _cfg(name="p", arms=("a", "b", "c"), d=3, **kw):
    return make_config(name=name, arms=list(arms), n_features=d, **kw)


def _obs(i, arm="a", x=(1.0, 0.5, -0.25), r=0.75, w=1.0):
    return Observation(f"d{i}", arm, tuple(x), r, w)


def test_create_read_update_config(store):
    cfg = store.create(_cfg())
    assert store.get_config("p") == cfg
    assert store.list_policies() == ["p"]
    with pytest.raises(ConfigError, match="already exists"):
        store.create(_cfg())
    assert store.create(_cfg(), exist_ok=True) == cfg
    new = store.update_config("p", rollout_fraction=0.5, enabled=False)
    assert store.get_config("p").rollout_fraction == 0.5
    assert store.get_config("p").enabled is False
    assert new == store.get_config("p")
    with pytest.raises(ConfigError, match="rollout_fraction"):
        store.update_config("p", rollout_fraction=1.5)
    with pytest.raises(ConfigError, match="n_features"):
        store.put_config(_cfg(d=4))
    with pytest.raises(UnknownPolicyError, match="nope"):
        store.get_config("nope")


def test_fresh_policy_has_empty_state_version_zero(store):
    store.create(_cfg())
    st = store.read_state("p")
    assert st.version == 0 and dict(st.arms) == {}
    assert store.head("p").version == 0


def test_apply_adds_deltas_and_bumps_version(store):
    store.create(_cfg())
    obs = [_obs(1), _obs(2, "b", r=0.2), _obs(3, "a", x=(0.0, 1.0, 1.0), r=1.0)]
    res = store.apply("p", obs)
    assert res.version == 1 and res.applied == 3 and res.duplicates == 0
    st = store.read_state("p")
    expected = aggregate(obs, 3)
    for arm, delta in expected.items():
        np.testing.assert_allclose(st.arms[arm].xx, delta.xx)
        np.testing.assert_allclose(st.arms[arm].b, delta.b)
        assert st.arms[arm].n == delta.n
    assert st.version == 1 and st.updated_at is not None


def test_same_batch_twice_changes_nothing(store):
    store.create(_cfg())
    batch = [_obs(i, arm="abc"[i % 3]) for i in range(20)]
    first = store.apply("p", batch)
    before = store.read_state("p")
    second = store.apply("p", batch)
    after = store.read_state("p")
    assert first.applied == 20
    assert second.applied == 0 and second.duplicates == 20
    assert after.version == before.version
    for arm in before.arms:
        np.testing.assert_array_equal(after.arms[arm].xx, before.arms[arm].xx)
        assert after.arms[arm].n == before.arms[arm].n


def test_partly_duplicate_batch_applies_only_new_ids(store):
    store.create(_cfg())
    store.apply("p", [_obs(1), _obs(2)])
    res = store.apply("p", [_obs(2), _obs(3), _obs(3)])
    assert res.applied == 1 and res.duplicates == 2
    assert store.read_state("p").arms["a"].n == 3


def test_invalid_delta_refused_and_changes_nothing(store):
    store.create(_cfg())
    store.apply("p", [_obs(1)])
    before = store.read_state("p")
    with pytest.raises(InvalidDeltaError):
        store.apply("p", [_obs(2), _obs(3, x=(1.0, 2.0))])  # wrong dimension
    with pytest.raises(InvalidDeltaError):
        store.apply("p", [_obs(4, x=(1.0, float("nan"), 0.0))])
    with pytest.raises(InvalidDeltaError):
        store.apply("p", [_obs(5, r=float("inf"))])
    with pytest.raises(UnknownArmError, match="zzz"):
        store.apply("p", [_obs(6, arm="zzz")])
    after = store.read_state("p")
    assert after.version == before.version
    np.testing.assert_array_equal(after.arms["a"].xx, before.arms["a"].xx)
    # the refused ids were not marked as applied
    assert store.apply("p", [_obs(2)]).applied == 1


def test_multiplier_moves_with_the_batch_and_stays_non_negative(store):
    store.create(_cfg())
    assert store.read_state("p").dual == 0.0
    store.apply("p", [_obs(1)], dual_delta=0.25)
    assert store.read_state("p").dual == 0.25
    store.apply("p", [_obs(2)], dual_delta=-1.0)  # projected: λ ≥ 0
    assert store.read_state("p").dual == 0.0
    store.apply("p", [_obs(3)], dual_delta=0.5)
    # a batch of duplicates only moves nothing; a partly duplicate one moves λ once
    res = store.apply("p", [_obs(3)], dual_delta=7.0)
    assert res.applied == 0 and store.read_state("p").dual == 0.5
    res = store.apply("p", [_obs(3), _obs(4)], dual_delta=0.125)
    assert res.applied == 1 and store.read_state("p").dual == 0.625
    # no observations: λ moves alone (how `rl-commons objective` resets it)
    assert store.apply("p", [], dual_delta=1.0).applied == 0
    assert store.read_state("p").dual == 1.625
    store.apply("p", [], dual_delta=-1.0)
    with pytest.raises(InvalidDeltaError, match="dual_delta"):
        store.apply("p", [_obs(5)], dual_delta=float("nan"))
    assert store.read_state("p").dual == 0.625
    store.reset("p")  # forgets the multiplier with the statistics
    assert store.read_state("p").dual == 0.0


def test_component_sums_are_stored_and_read_back(store):
    store.create(_cfg())
    values = (0.9, 0.2, 0.4, 0.0, 1.0)
    legacy = [_obs(1), _obs(2, "b")]  # learnt before components
    store.apply("p", legacy)
    with_c = [
        Observation("d3", "a", (0.5, 1.0, 2.0), 0.1, 1.0, values),
        Observation("d4", "c", (1.0, 0.0, 1.0), 0.3, 0.5, values),
    ]
    store.apply("p", with_c)
    st = store.read_state("p").arms
    expected = {arm: aggregate(legacy, 3)[arm] for arm in ("a", "b")}
    for arm, delta in aggregate(with_c, 3).items():
        expected[arm] = expected[arm].updated(delta) if arm in expected else delta
    assert st["b"].components is None  # never had component data
    assert st["a"].components.legacy and not st["c"].components.legacy
    for arm in ("a", "c"):
        for name in ("y", "s", "s2"):
            np.testing.assert_allclose(
                getattr(st[arm].components, name), getattr(expected[arm].components, name)
            )
    np.testing.assert_allclose(st["a"].components.xx, aggregate(with_c[:1], 3)["a"].xx)
    assert st["a"].components.n == 1.0


def test_apply_to_unknown_policy(store):
    with pytest.raises(UnknownPolicyError):
        store.apply("ghost", [_obs(1)])


def test_forgetting_decays_old_statistics(store):
    store.create(_cfg(algorithm={"forgetting": 0.5}))
    store.apply("p", [_obs(1, r=1.0)])
    store.apply("p", [_obs(2, r=0.0)])
    st = store.read_state("p").arms["a"]
    assert st.n == pytest.approx(0.5 * 1 + 1)
    x = np.array([1.0, 0.5, -0.25])
    np.testing.assert_allclose(st.b, 0.5 * 1.0 * x)


def test_add_arm_at_runtime(store):
    store.create(_cfg())
    store.apply("p", [_obs(1)])
    cfg = store.add_arm("p", "mistral")
    assert cfg.arms[-1] == "mistral"
    store.apply("p", [_obs(2, arm="mistral")])
    assert store.read_state("p").arms["mistral"].n == 1
    with pytest.raises(ConfigError, match="cannot be removed"):
        store.update_config("p", arms=["a", "b"])


def test_reset_and_delete(store):
    store.create(_cfg())
    store.apply("p", [_obs(1)])
    v = store.reset("p")
    assert v == 2 and dict(store.read_state("p").arms) == {}
    store.delete("p")
    assert store.list_policies() == []
    with pytest.raises(UnknownPolicyError):
        store.read_state("p")


def test_concurrent_disjoint_appliers_sum_exactly(store):
    store.create(_cfg())
    rng = np.random.default_rng(7)
    batches = [
        [
            Observation(f"w{w}-{i}", "abc"[int(rng.integers(3))], tuple(rng.normal(size=3)), 0.5)
            for i in range(j * 25, (j + 1) * 25)
        ]
        for w in range(2)
        for j in range(8)
    ]
    errors = []

    def work(mine):
        try:
            for b in mine:
                store.apply("p", b)
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(batches[w * 8 : (w + 1) * 8],)) for w in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    st = store.read_state("p")
    expected = aggregate([o for b in batches for o in b], 3)
    for arm, delta in expected.items():
        np.testing.assert_allclose(st.arms[arm].xx, delta.xx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st.arms[arm].b, delta.b, rtol=1e-12, atol=1e-12)
        assert st.arms[arm].n == delta.n
    assert st.version == 16


def test_reader_sees_new_version(store):
    store.create(_cfg(arms=("a", "b"), d=2))
    with PolicyReader(store, "p", poll_interval=0.02, seed=1) as reader:
        assert reader.version == 0
        obs = [Observation(f"d{i}", "b", (1.0, 0.0), 1.0) for i in range(50)]
        obs += [Observation(f"e{i}", "a", (1.0, 0.0), 0.0) for i in range(50)]
        v = store.apply("p", obs).version
        assert reader.wait_for_version(v, timeout=5)
        # b is clearly better now: the greedy arm is b
        sel = reader.select([1.0, 0.0])
        assert sel.probabilities[1] > 0.9
        store.update_config("p", rollout_fraction=0.7)
        deadline = __import__("time").monotonic() + 5
        while reader.config.rollout_fraction != 0.7 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.01)
        assert reader.config.rollout_fraction == 0.7
        assert reader.staleness() < 1.0
