"""``PolicyReader`` wakes on the version channel instead of waiting for its next poll."""

from __future__ import annotations

import time

import pytest

from policy_store import Observation, PolicyReader, make_config

pytestmark = pytest.mark.integration


def _observe(store, i: int) -> int:
    return store.apply("w", [Observation(f"d{i}", "a", (1.0, 0.0), 1.0)]).version


def test_a_published_version_is_in_use_long_before_the_next_poll(redis_store):
    redis_store.create(make_config(name="w", arms=["a", "b"], n_features=2))
    with PolicyReader(redis_store, "w", poll_interval=30.0, seed=0) as reader:
        assert reader.version == 0
        time.sleep(0.2)  # the subscription is open
        for i in range(1, 4):
            v = _observe(redis_store, i)
            assert reader.wait_for_version(v, timeout=3.0), f"version {v} not seen"
        assert float(reader.view.snapshot.n.sum()) == 3.0


def test_without_notifications_the_reader_waits_for_its_poll(redis_store):
    redis_store.create(make_config(name="w", arms=["a", "b"], n_features=2))
    with PolicyReader(redis_store, "w", poll_interval=30.0, seed=0, notify=False) as reader:
        v = _observe(redis_store, 1)
        assert not reader.wait_for_version(v, timeout=1.0)
        assert reader.refresh() and reader.version == v


def test_the_reader_polls_while_the_channel_is_gone_and_resubscribes(redis_store, redis_client):
    redis_store.create(make_config(name="w", arms=["a", "b"], n_features=2))
    with PolicyReader(redis_store, "w", poll_interval=0.05, seed=0) as reader:
        time.sleep(0.2)
        redis_client.client_kill_filter(_type="pubsub")  # drop the subscription's connection
        v = _observe(redis_store, 1)
        assert reader.wait_for_version(v, timeout=3.0)  # the poll still sees it
        assert reader.refresh_errors == 0
