"""``JoinTables``: the batch engine's join over partitions, without Kafka."""

from __future__ import annotations

from policy_store import make_config
from producers import DecisionEvent, OutcomeEvent, RewardEvent
from stream_app._batch_join import DECISIONS, OUTCOMES, JoinTables, Outputs, Source, encode_entry
from stream_app._checkpoint import restore_partition
from stream_app._metrics import HealthBuffer, WorkerMetrics

ARMS = ("a", "b")
CFG = make_config(name="p", arms=ARMS, n_features=2, reward={"window_seconds": 10.0})


def _tables(**kw) -> JoinTables:
    t = JoinTables(
        {"p": CFG}.get,
        default_window=5.0,
        retention=60.0,
        metrics=WorkerMetrics(),
        health=HealthBuffer(),
        **kw,
    )
    t.assign(0, {})
    t.assign(1, {})
    return t


def _decision(i: str, arm: str = "a", arms: tuple[str, ...] = ARMS) -> bytes:
    return DecisionEvent(
        decision_id=i,
        policy="p",
        policy_version=0,
        timestamp=1.0,
        arms=arms,
        arm=arm,
        propensity=0.5,
        features=(1.0, 0.0),
    ).to_bytes()


def _outcome(i: str, **kw) -> bytes:
    return OutcomeEvent(decision_id=i, timestamp=2.0, **kw).to_bytes()


def _src(key: str, p: int = 0, offset: int = 0, topic: str = "t") -> Source:
    return Source(topic, p, offset, key.encode())


def test_a_pair_in_one_batch_gives_one_reward_and_one_changelog_write():
    t = _tables()
    out = Outputs()
    t.handle(DECISIONS, _decision("d1"), _src("d1"), 100.0, out)
    t.handle(OUTCOMES, _outcome("d1", quality=1.0, cost=0.0, latency=0.0), _src("d1"), 100.0, out)
    assert [r.decision_id for r in out.rewards] == ["d1"]
    assert out.rewards[0].arm == "a" and out.rewards[0].reward > 0.9
    # one write per key and batch: the tombstone that keeps the reward for duplicates
    assert list(out.changes) == [(0, "d1")]
    assert out.changes[(0, "d1")]["status"] == "rewarded"
    t.flush_counts()
    assert t.metrics.rewards._value.get() == 1
    assert t.metrics.joined._value.get() == 1
    assert t.metrics.events_in.labels("decisions")._value.get() == 1
    assert t.health.take()["p"]["rewards"] == 1


def test_partitions_are_separate_and_foreign_partitions_are_ignored():
    t = _tables()
    out = Outputs()
    t.handle(DECISIONS, _decision("d1"), _src("d1", p=0), 1.0, out)
    t.handle(OUTCOMES, _outcome("d1", final=True), _src("d1", p=1), 1.0, out)
    assert out.rewards == []  # the halves live in different tables: no join
    t.handle(DECISIONS, _decision("d2"), _src("d2", p=3), 1.0, out)
    assert (3, "d2") not in out.changes and len(t) == 2
    t.drop(0)
    assert t.partitions == {1}


def test_bad_input_goes_to_the_dlq_with_its_source_and_is_counted():
    t = _tables()
    out = Outputs()
    t.handle(DECISIONS, b"{not json", _src("k", offset=7, topic="dec"), 1.0, out)
    t.handle(DECISIONS, _decision("d9", arm="zzz", arms=("a", "zzz")), _src("d9"), 1.0, out)
    assert [r.reason for r in out.dlq] == ["bad_json", "unknown_arm"]
    rec = out.dlq[0]
    assert (rec.source_topic, rec.partition, rec.offset, rec.key) == ("dec", 0, 7, "k")
    assert rec.original == b"{not json"
    assert out.changes == {} and out.rewards == []
    t.flush_counts()
    assert t.metrics.dlq.labels("bad_json")._value.get() == 1


def test_sweep_expires_closes_partial_outcomes_and_drops_old_tombstones():
    t = _tables()
    out = Outputs()
    t.handle(DECISIONS, _decision("lonely"), _src("lonely"), 0.0, out)
    t.handle(DECISIONS, _decision("half"), _src("half", p=1), 0.0, out)
    t.handle(OUTCOMES, _outcome("half", quality=0.5), _src("half", p=1), 0.0, out)
    assert t.sweep(9.0, Outputs()) == 0  # windows (10 s) still open
    swept = Outputs()
    assert t.sweep(10.5, swept) == 2
    assert [r.decision_id for r in swept.rewards] == ["half"]  # defaults fill the rest
    assert swept.changes[(0, "lonely")]["status"] == "expired"
    assert swept.changes[(1, "half")]["status"] == "rewarded"
    later = Outputs()
    assert t.sweep(10.5 + 61.0, later) == 2  # tombstones kept for `retention`, then dropped
    assert later.changes == {(0, "lonely"): None, (1, "half"): None}
    assert len(t) == 0


def test_restored_tombstone_resends_the_same_reward_on_replay():
    """A crash after the changelog write and before the commit replays the input."""
    t = _tables()
    out = Outputs()
    t.handle(DECISIONS, _decision("d1"), _src("d1"), 1.0, out)
    t.handle(OUTCOMES, _outcome("d1", final=True, quality=0.7), _src("d1"), 1.0, out)
    # what a restarted worker reads back from the changelog
    records = [(i, b"d1", encode_entry(s)) for i, s in enumerate(out.changes.values())]
    t2 = _tables()
    t2.assign(0, restore_partition(records).table)
    replay = Outputs()
    t2.handle(DECISIONS, _decision("d1"), _src("d1"), 5.0, replay)
    t2.handle(OUTCOMES, _outcome("d1", final=True, quality=0.7), _src("d1"), 5.0, replay)
    assert [r.to_bytes() for r in replay.rewards] == [out.rewards[0].to_bytes()] * 2
    assert isinstance(replay.rewards[0], RewardEvent)
    assert replay.changes == {}  # nothing new to write


def test_restore_keeps_the_last_write_and_honours_deletes():
    writes = [
        (b"a", {"deadline": 1}),
        (b"b", {"deadline": 2}),
        (b"a", None),
        (b"b", {"deadline": 3}),
    ]
    recs = [(i, k, encode_entry(v)) for i, (k, v) in enumerate(writes)]
    assert restore_partition(recs).table == {"b": {"deadline": 3}}
