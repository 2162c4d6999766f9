"""``BatchEngine``: window sweeps and policies held while their config is gone (a wiped
Redis), on the fake Kafka world of ``_engine_fakes``."""

from __future__ import annotations

import pytest
from _engine_fakes import (
    CFG,
    TOPICS,
    World,
    _commits,
    _order,
)

from producers import DLQRecord, OutcomeEvent


@pytest.fixture
def world() -> World:
    return World()


def test_a_sweep_sends_its_rewards_before_it_writes_its_tombstones(world):
    for i in range(3):
        world.send_pair(i, outcome=False)
    world.turns(1)
    for i in range(3):  # a partial outcome: the window closes with a reward
        out = OutcomeEvent(decision_id=f"d{i}", timestamp=2.0, cost=0.0)
        world.broker.append(TOPICS.outcomes, f"d{i}".encode(), out.to_bytes())
    world.turns(1)
    events = world.turns(1, advance=40.0)  # past the 30 s window: the sweep closes them
    first_change, last_change, first_sent, last_sent, flushes = _order(events)
    assert last_sent < flushes[0] < first_change and last_change < flushes[1]


def test_a_policy_whose_config_vanished_is_held_not_dead_lettered_until_it_is_back(world):
    """A wiped Redis: the config cache knew the policy and no deletion was recorded, so
    its rewards wait uncommitted (rewards partitions paused, ``problem`` says why) instead
    of going to the DLQ; once the config is back (rebuild or re-created) they apply."""
    from stream_app import ConfigCache

    cache = ConfigCache(world.store)
    assert cache.get("p") is not None
    world.updater.lost, world.updater.waiting = cache.lost, cache.waiting
    world.send_pair(0)
    world.turns(2)
    assert world.n() == 1
    world.store.delete("p")  # the wipe: nothing recorded it
    for i in range(1, 4):
        world.send_pair(i)
    world.turns(2)
    assert not world.broker.records(TOPICS.dlq)
    assert "rl-commons rebuild p" in world.engine.problem and not world.engine.ready
    assert world.consumer.paused == {(TOPICS.rewards, p) for p in (0, 1)}
    world.turns(2, advance=5.0)  # still lost: still held, nothing dead-lettered
    assert not world.broker.records(TOPICS.dlq) and len(world.engine._pending) == 3
    world.store.create(CFG)  # re-created by the operator (or rebuilt)
    events = world.turns(1, advance=5.0)
    assert world.n() == 3 and world.engine.problem is None  # d0's sums went with the wipe
    assert _commits(events, TOPICS.rewards) and not world.engine._rewards_paused


def test_a_recorded_deletion_dead_letters_as_before(world):
    from stream_app import ConfigCache, PolicyRecord

    cache = ConfigCache(world.store)
    cache.get("p")
    world.updater.lost, world.updater.waiting = cache.lost, cache.waiting
    world.store.delete("p")
    cache.on_record(PolicyRecord("p", "delete", None, 1.0, 0.0))
    world.send_pair(0)
    world.turns(2)
    [rec] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(rec.value()).reason == "unknown_policy"
    assert world.engine.problem is None


def test_a_worker_started_after_the_wipe_holds_what_the_record_says_exists(world):
    """The worker never saw the policy in Redis: the policies topic (read at start, or a
    relayed change) says it exists, so its rewards are held, not dead-lettered as
    ``unknown_policy``; a recorded deletion then lets them go to the DLQ."""
    from stream_app import ConfigCache, PolicyRecord

    world.store.delete("p")  # wiped before this worker started
    cache = ConfigCache(world.store)
    cache.remember([PolicyRecord("p", "create", CFG.model_dump_json(), 1.0, 0.0)])
    world.updater.lost, world.updater.waiting = cache.lost, cache.waiting
    assert cache.get("p") == CFG  # the join goes on with the recorded config
    for i in range(3):
        world.send_pair(i)
    world.turns(2)
    assert not world.broker.records(TOPICS.dlq)
    assert "rl-commons rebuild p" in world.engine.problem and len(world.engine._pending) == 3
    cache.on_record(PolicyRecord("p", "delete", None, 2.0, 0.0))  # `policy delete p`
    world.turns(2, advance=5.0)
    reasons = [
        DLQRecord.model_validate_json(r.value()).reason for r in world.broker.records(TOPICS.dlq)
    ]
    assert reasons == ["unknown_policy"] * 3 and world.engine.problem is None
