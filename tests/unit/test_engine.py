"""``BatchEngine``'s order of effects, with fake Kafka clients and an in-memory store.

A fake broker keeps each topic's partitions as lists; the fake producer makes records
visible only on ``flush`` and the fake consumer delivers rebalance callbacks inside
``consume``/``poll`` like librdkafka, honours ``pause`` and restarts from the committed
offsets after a rebalance. Every client call and every store apply is appended to one
log, so the tests read the engine's order of effects from it. The engine is driven one
loop turn at a time on the test's thread, with a fake clock.
"""

from __future__ import annotations

import pytest
from _engine_fakes import (
    CHANGELOG,
    N_PARTITIONS,
    TOPICS,
    World,
    _commits,
    _index,
    _order,
)

from policy_store import StoreError, StoreUnavailableError
from producers import DLQRecord, OutcomeEvent


@pytest.fixture
def world() -> World:
    return World()


def test_input_changes_are_flushed_before_its_rewards_and_apply_comes_before_commit(world):
    """A batch of input: table changes first (a replay then meets the tombstone and
    re-sends the very reward, never a new one), then rewards and DLQ, then the commit."""
    for i in range(3):
        world.send_pair(i)
    world.broker.append(TOPICS.decisions, b"bad", b"{not json")
    first = world.turns(1)
    assert first[:2] == [("assign", sorted(world.consumer.assigned)), ("restore", [0, 1])]
    produced = [e[1] for e in first if e[0] == "produce"]
    assert produced[:3] == [CHANGELOG] * 3  # one write per key and batch
    assert sorted(produced[3:]) == sorted([TOPICS.rewards] * 3 + [TOPICS.dlq])
    first_change, last_change, first_sent, last_sent, flushes = _order(first)
    assert last_change < flushes[0] < first_sent and last_sent < flushes[1]
    [commit] = [i for i, e in enumerate(first) if e[0] == "commit"]
    assert first[commit] == ("commit", [TOPICS.decisions, TOPICS.outcomes]) and commit > flushes[1]
    assert world.n() == 0  # the rewards are applied once they are read back

    second = world.turns(1)
    assert [e for e in second if e[0] in ("apply", "commit")] == [
        ("apply", 3),
        ("commit", [TOPICS.rewards]),
    ]
    assert world.n() == 3
    [dlq] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(dlq.value()).reason == "bad_json"


def test_store_outage_pauses_rewards_commits_nothing_of_them_and_applies_everything_once(world):
    for i in range(4):
        world.send_pair(i)
    world.turns(1)  # joined: 4 rewards on the topic
    world.store.down = True
    events = world.turns(1)
    assert ("apply failed", 4) in events and _commits(events, TOPICS.rewards) == []
    pause = [e for e in events if e[0] == "pause"]
    assert pause == [("pause", [(TOPICS.rewards, p) for p in range(N_PARTITIONS)])]
    assert world.retries() == 1

    # before the backoff (1 s) has passed nothing is retried; the join goes on meanwhile
    for i in range(4, 7):
        world.send_pair(i)
    events = world.turns(1, advance=0.5)
    assert not [e for e in events if e[0].startswith("apply")]
    assert _commits(events, TOPICS.decisions) and not _commits(events, TOPICS.rewards)
    # the new rewards wait on the paused partitions; the retry fails again, backoff 2 s
    events = world.turns(1, advance=0.6)
    assert [e for e in events if e[0].startswith("apply")] == [("apply failed", 4)]
    assert world.retries() == 2
    assert not [e for e in world.turns(1, advance=1.5) if e[0].startswith("apply")]

    world.store.down = False
    events = world.turns(1, advance=1.0)
    apply_ = _index(events, ("apply", 4))
    [commit] = _commits(events, TOPICS.rewards)
    resume = _index(events, ("resume", [(TOPICS.rewards, p) for p in range(N_PARTITIONS)]))
    assert apply_ < commit < resume
    events = world.turns(1)  # the rewards joined during the outage, read after the resume
    assert ("apply", 3) in events and _commits(events, TOPICS.rewards)
    assert world.n() == 7 and world.retries() == 2
    assert world.updater.metrics.duplicates.labels("rewards")._value.get() == 0


def test_on_revoke_pending_rewards_are_forgotten_not_committed_and_read_again(world):
    for i in range(3):
        world.send_pair(i)
    world.turns(1)
    world.store.down = True
    world.turns(1)
    assert world.engine._pending and world.retries() == 1
    world.consumer.rebalance("revoke")
    world.store.down = False
    events = world.turns(1)
    # the revoke dropped the pending rewards (uncommitted); the new assignment starts
    # unpaused from the committed offsets, so the same rewards come back and apply once
    assert events[0][0] == "revoke" and events[1][0] == "assign"
    assert ("restore", [0, 1]) not in events  # kept partitions keep their tables
    assert [e for e in events if e[0] in ("apply", "commit")] == [
        ("apply", 3),
        ("commit", [TOPICS.rewards]),
    ]
    assert world.n() == 3


def test_on_lost_the_tables_are_dropped_and_restored_from_the_changelog(world):
    for i in range(4):
        world.send_pair(i, outcome=False)  # open entries: decisions waiting for outcomes
    world.turns(1)
    assert len(world.engine.join) == 4
    world.consumer.rebalance("lost")
    events = world.turns(1)
    assert events[:3] == [
        ("lost", sorted(world.consumer.assigned)),
        ("assign", sorted(world.consumer.assigned)),
        ("restore", [0, 1]),
    ]
    assert len(world.engine.join) == 4  # restored from the changelog, not kept
    for i in range(4):
        out = OutcomeEvent(decision_id=f"d{i}", timestamp=2.0, quality=1.0, cost=0.0, latency=0.0)
        world.broker.append(TOPICS.outcomes, f"d{i}".encode(), out.to_bytes())
    world.turns(2)
    assert world.n() == 4


def test_a_reward_the_store_refuses_goes_to_the_dlq_before_its_offset_is_committed(world):
    world.send_pair(0)
    world.turns(1)
    world.store.delete("p")  # the worker's config cache still knows the policy
    events = world.turns(1)
    dlq = _index(events, ("produce", TOPICS.dlq, "d0"))
    assert dlq < events.index(("flush",)) < _commits(events, TOPICS.rewards)[0]
    [rec] = world.broker.records(TOPICS.dlq)
    assert DLQRecord.model_validate_json(rec.value()).reason == "unknown_policy"


def test_out_of_memory_is_retried_counted_and_shown_as_the_reason_not_ready(world):
    for i in range(3):
        world.send_pair(i)
    world.turns(1)
    assert world.engine.ready and world.engine.problem is None
    real_apply = world.store.apply

    def full(name, observations, **kwargs):
        raise StoreUnavailableError("Redis at redis://x is out of memory (maxmemory reached)")

    world.store.apply = full
    sessions = len(world.clients.consumers)
    events = world.turns(3, advance=5.0)
    assert world.retries() == 3 and _commits(events, TOPICS.rewards) == []
    assert not world.engine.ready and "out of memory" in world.engine.problem
    assert len(world.clients.consumers) == sessions  # no consumer restart
    world.store.apply = real_apply
    events = world.turns(1, advance=5.0)
    assert _commits(events, TOPICS.rewards) and world.n() == 3
    assert world.engine.ready and world.engine.problem is None


def test_an_unexpected_store_error_is_retried_a_bounded_number_of_times_then_isolated(world):
    """A reward the store keeps refusing with an unexpected error (not the store being
    away): the batch is retried ``max_tries`` times with backoff, then split; the reward
    goes to the DLQ, every other one is applied and the partition moves on."""
    for i in range(6):
        world.send_pair(i)
    world.turns(1)
    real_apply = world.store.apply

    def refuses_d3(name, observations, **kwargs):
        observations = list(observations)
        if any(o.decision_id == "d3" for o in observations):
            raise StoreError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return real_apply(name, observations, **kwargs)

    world.store.apply = refuses_d3
    tries = world.updater.max_tries
    for k in range(1, tries):
        events = world.turns(1, advance=5.0)
        assert world.retries() == k and _commits(events, TOPICS.rewards) == []
        assert "WRONGTYPE" in world.engine.problem
    events = world.turns(1, advance=5.0)
    assert _commits(events, TOPICS.rewards) and world.engine.problem is None
    assert world.n() == 5
    [dlq] = [DLQRecord.model_validate_json(r.value()) for r in world.broker.records(TOPICS.dlq)]
    assert dlq.reason == "out_of_range" and "WRONGTYPE" in dlq.detail and dlq.key == "d3"
