"""Checkpoints of the join tables: the pure logic, then the engine with fake Kafka clients."""

from __future__ import annotations

import json
import random

import pytest
from _engine_fakes import CHANGELOG, TOPICS, World, _commits

from producers import RewardEvent
from stream_app._batch_join import decode_entry, encode_entry
from stream_app._checkpoint import END, START, Checkpoints, checkpoint_records, restore_partition
from stream_app._join import on_tick


class Log:
    """A changelog partition and the table a worker keeps beside it."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes, bytes | None]] = []
        self.table: dict[str, dict] = {}

    def write(self, key: bytes, value: bytes | None) -> int:
        self.records.append((len(self.records), key, value))
        return len(self.records) - 1

    def change(self, key: str, state: dict | None) -> None:
        if state is None:
            self.table.pop(key, None)
        else:
            self.table[key] = state
        self.write(key.encode(), encode_entry(state))

    def checkpoint(self, stop_after: int | None = None) -> int:
        """Write a checkpoint of the table (only its first ``stop_after`` records: a crash)."""
        records = list(checkpoint_records(self.table))[:stop_after]
        starts = [self.write(k, v) for k, v in records]
        return starts[0]

    def since(self, start: int) -> list[tuple[int, bytes, bytes | None]]:
        return self.records[start:]


def _random_changes(log: Log, rng: random.Random, n: int, keys: int = 30) -> None:
    for _ in range(n):
        key = f"d{rng.randrange(keys)}"
        log.change(key, None if rng.random() < 0.3 else {"deadline": rng.random(), "k": key})


@pytest.mark.parametrize("seed", range(5))
def test_restore_from_the_last_checkpoint_equals_the_full_history(seed):
    rng = random.Random(seed)
    log = Log()
    _random_changes(log, rng, 200)
    log.checkpoint()
    _random_changes(log, rng, 50)
    start = log.checkpoint()
    _random_changes(log, rng, 40)  # changes and deletes after the checkpoint follow it
    full = restore_partition(log.records)
    tail = restore_partition(log.since(start), start)
    assert tail is not None and full is not None
    assert tail.table == full.table == log.table
    assert tail.records == len(log.records) - start < full.records
    assert tail.since == 40 and full.since == len(log.records)


def test_a_checkpoint_cut_short_by_a_crash_is_not_used_and_does_no_harm():
    rng = random.Random(7)
    log = Log()
    _random_changes(log, rng, 100)
    start = log.checkpoint()
    _random_changes(log, rng, 20)
    broken = log.checkpoint(stop_after=5)  # start marker and 4 entries, no end marker
    _random_changes(log, rng, 20)
    assert restore_partition(log.since(broken), broken) is None
    restored = restore_partition(log.since(start), start)  # the committed one still works
    assert restored is not None and restored.table == log.table


def test_a_foreign_record_inside_a_checkpoint_or_a_wrong_start_refuses_it():
    log = Log()
    for i in range(5):
        log.change(f"d{i}", {"deadline": i})
    records = list(checkpoint_records(log.table))
    start = log.write(*records[0])
    log.write(b"d9", encode_entry({"deadline": 9}))  # another writer in between
    for key, value in records[1:]:
        log.write(key, value)
    assert restore_partition(log.since(start), start) is None
    assert restore_partition(log.since(start + 1), start + 1) is None  # not a start marker
    assert restore_partition([], 3) is None  # offset beyond the end (topic re-created)
    # an end marker of another checkpoint at the right offset
    other = list(checkpoint_records(log.table, cid="other"))
    mixed = [(i, k, v) for i, (k, v) in enumerate(records[:-1] + other[-1:])]
    assert restore_partition(mixed, 0) is None
    assert restore_partition([(i, k, v) for i, (k, v) in enumerate(records)], 0) is not None


def test_a_compacted_checkpoint_is_still_recognised_by_its_offsets():
    log = Log()
    for i in range(6):
        log.change(f"d{i}", {"deadline": i})
    start = log.checkpoint()
    log.change("d2", None)
    log.change("d3", {"deadline": 33})
    # compaction drops the checkpoint's records of d2 and d3 (later writes supersede them)
    keep = [r for r in log.since(start) if r[1] not in (b"d2", b"d3") or r[0] > start + 7]
    restored = restore_partition(keep, start)
    assert restored is not None and restored.table == log.table


def test_marker_values_look_like_tombstones_an_older_worker_sweeps_away():
    for key, value in checkpoint_records({"d1": {"deadline": 5}}):
        if key in (START, END):
            step = on_tick(decode_entry(value), None, now=1.0)
            assert step.changed and step.state is None
    assert json.loads(next(checkpoint_records({"a": {}, "b": {}}))[1])["n"] == 2


def test_a_partition_is_due_after_every_changes_and_ratio_times_its_table():
    cp = Checkpoints(CHANGELOG, every=10, ratio=2.0)
    tables = {0: [0] * 3, 1: [0] * 9}
    cp.note([(0, "a")] * 9 + [(1, "b")] * 15)
    assert cp.due(tables) == []
    cp.note([(0, "a"), (1, "b")])
    assert cp.due(tables) == [0]  # 10 >= max(10, 6); partition 1: 16 < max(10, 18)
    cp.note([(1, "b")] * 2)
    assert cp.due(tables) == [0, 1]
    assert Checkpoints(CHANGELOG, every=0).due({0: []}) == []


# -- the engine, with fake clients ----------------------------------------------------------
def _full(world: World, p: int) -> dict:
    log = world.broker.logs[(CHANGELOG, p)]
    return restore_partition([(m.offset(), m.key(), m.value()) for m in log]).table


def test_the_engine_checkpoints_commits_the_start_and_restores_from_there():
    world = World(checkpoint_every=4, checkpoint_ratio=1.0)
    for i in range(12):
        world.send_pair(i, outcome=i % 3 != 0)  # rewarded tombstones and open decisions
    events = world.turns(1)
    starts = {p: world.broker.committed.get((CHANGELOG, p)) for p in (0, 1)}
    assert all(s is not None for s in starts.values())
    for p, s in starts.items():
        assert world.broker.logs[(CHANGELOG, p)][s].key() == START
    commit = events.index(("commit", [CHANGELOG]))
    assert commit > max(i for i, e in enumerate(events) if e == ("flush",))

    world.turns(1, advance=31.0)  # windows close: expiries, rewards, new tombstones
    world.turns(1, advance=61.0)  # tombstones dropped: deletes after the checkpoint
    for i in range(12, 14):
        world.send_pair(i, outcome=False)
    world.turns(1)
    world.clients.reads.clear()
    world.consumer.rebalance("lost")
    world.turns(1)
    reads = world.clients.reads
    assert sorted(p for p, _, _ in reads) == [0, 1]
    for p, first, _ in reads:
        # a later checkpoint (the deletes made the table small) or the first one
        assert first == world.broker.committed[(CHANGELOG, p)] >= starts[p] > 0
        assert world.engine.join.tables[p] == _full(world, p)
    assert len(world.engine.join) == 2


def test_the_engine_spreads_a_checkpoint_over_turns_and_commits_it_once_complete():
    world = World(checkpoint_every=4, checkpoint_ratio=0.5)
    world.engine.options.batch_size, world.engine.checkpoints.per_turn = 6, 2
    for i in range(30):
        world.send_pair(i, outcome=False)  # open decisions: 30 live entries
    events = world.turns(1)
    assert _commits(events, CHANGELOG) == []  # started, not complete
    turns = 1
    while len([k for k in world.broker.committed if k[0] == CHANGELOG]) < 2:
        events = world.turns(1)
        entries = [e for e in events if e[:2] == ("produce", CHANGELOG)]
        assert len(entries) <= 6 + 2 + 2  # the batch's changes, ≤ per_turn entries, the ends
        turns += 1
    assert turns > 5
    world.turns(2)
    world.clients.reads.clear()
    world.consumer.rebalance("lost")
    world.turns(1)
    for p, first, _ in world.clients.reads:
        assert first == world.broker.committed[(CHANGELOG, p)] > 0
        assert world.engine.join.tables[p] == _full(world, p)
    assert len(world.engine.join) == 30


def test_after_a_crash_the_replay_meets_the_checkpointed_tombstones_and_resends_the_same():
    world = World(checkpoint_every=2, checkpoint_ratio=1.0)
    for i in range(6):
        world.send_pair(i)
    world.turns(2)  # joined, checkpointed, rewards applied
    sent = sorted(m.value() for m in world.broker.records(TOPICS.rewards))
    assert world.n() == 6
    # the worker died before committing its input: the next owner reads it again
    for topic in (TOPICS.decisions, TOPICS.outcomes):
        for p in (0, 1):
            world.broker.committed[(topic, p)] = 0
    world.consumer.rebalance("lost")
    world.turns(3)
    again = [m.value() for m in world.broker.records(TOPICS.rewards)]
    assert sorted(again) == sorted(sent * 3)  # decision and outcome each re-send it
    assert {RewardEvent.model_validate_json(v).decision_id for v in again} == {
        f"d{i}" for i in range(6)
    }
    assert world.n() == 6  # nothing counted twice
    assert all(first > 0 for _, first, _ in world.clients.reads[-2:])  # from checkpoints


def test_no_checkpoint_committed_restores_from_the_beginning():
    world = World(checkpoint_every=0)
    for i in range(4):
        world.send_pair(i, outcome=False)
    world.turns(1)
    assert not [k for k in world.broker.committed if k[0] == CHANGELOG]
    world.clients.reads.clear()
    world.consumer.rebalance("lost")
    world.turns(1)
    assert sorted(world.clients.reads) == sorted(
        (p, 0, len(world.broker.logs[(CHANGELOG, p)])) for p in (0, 1)
    )
    assert len(world.engine.join) == 4


# -- the worker's flags ---------------------------------------------------------------------
def test_worker_checkpoint_flags_reach_the_engine_options(monkeypatch, capsys):
    import faust

    import stream_app
    from stream_app.ops.cli import _worker as worker_cli
    from stream_app.ops.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["worker"])
    assert (args.checkpoint_every, args.checkpoint_ratio) == (10_000, 4.0)  # defaults kept
    for bad in (
        ["--checkpoint-every", "-1"],
        ["--checkpoint-every", "1.5"],
        ["--checkpoint-ratio", "0"],
        ["--checkpoint-ratio", "nan"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(["worker", *bad])
        assert bad[0] in capsys.readouterr().err
    got = {}
    monkeypatch.setattr(worker_cli, "wait_for_services", lambda s, w: worker_cli.Reach())
    monkeypatch.setattr(stream_app, "create_app", lambda s, **kw: got.update(kw) or _Host())
    monkeypatch.setattr(faust, "Worker", lambda *a, **kw: _Host())
    args = parser.parse_args(["worker", "--checkpoint-every", "0", "--checkpoint-ratio", "2.5"])
    assert args.func(args) == 0
    assert (got["checkpoint_every"], got["checkpoint_ratio"]) == (0, 2.5)


class _Host:
    app = None

    def execute_from_commandline(self) -> None:
        pass


# -- a checkpoint written over several turns -------------------------------------------------
class _LogClients:
    """``Checkpoints.write``'s clients, produce and flush, writing to one ``Log``."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.flushes = 0
        self.puts = 0  # records written through ``put``

    def producer(self, on_delivery, every_delivery: bool = False) -> _LogClients:
        return self

    def produce(self, topic, value, key, partition, on_delivery) -> None:
        on_delivery(None, _Msg(self.log.write(key, value)))

    def flush(self, timeout: float = 0) -> None:
        self.flushes += 1

    def put(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.puts += 1
        self.log.write(key, value)


class _Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def _turn(cp: Checkpoints, log: Log, clients: _LogClients, rng: random.Random, n: int) -> dict:
    """One loop turn: ``n`` random changes (flushed and counted), then ``write``."""
    before = len(log.records)
    _random_changes(log, rng, n)
    cp.note((0, k.decode()) for _, k, _ in log.records[before:])
    clients.puts = 0
    return cp.write({0: log.table}, clients, clients.put, lambda: clients.flush())


@pytest.mark.parametrize("seed", range(6))
def test_a_spread_checkpoint_restores_the_same_table_as_the_full_history(seed):
    rng = random.Random(seed)
    log, cp = Log(), Checkpoints(CHANGELOG, every=50, ratio=1.0, per_turn=4)
    clients = _LogClients(log)
    _random_changes(log, rng, 100, keys=40)
    cp.since[0] = 100
    starts: list[dict] = []
    while not starts or not starts[-1]:
        starts.append(_turn(cp, log, clients, rng, rng.randrange(4)))
        assert clients.puts <= 4 + 1  # a turn writes ≤ per_turn entries (and the end marker)
    assert len(starts) > 3 and not any(starts[:-1])  # committed only once complete
    start = starts[-1][(CHANGELOG, 0)]
    for _ in range(5):
        _turn(cp, log, clients, rng, 3)  # changes after the end marker
    tail, full = restore_partition(log.since(start), start), restore_partition(log.records)
    assert tail is not None and full is not None
    assert tail.table == full.table == log.table


def test_a_key_changed_after_the_start_is_not_written_back_with_its_old_value():
    log, cp = Log(), Checkpoints(CHANGELOG, every=1, ratio=0.1, per_turn=1)
    clients = _LogClients(log)
    for i in range(4):
        log.change(f"d{i}", {"deadline": i})
    cp.note((0, f"d{i}") for i in range(4))
    write = lambda: cp.write({0: log.table}, clients, clients.put, lambda: None)  # noqa: E731
    assert write() == {}  # started: d0 written
    log.change("d3", {"deadline": 33})  # not written by the checkpoint yet: changed ...
    log.change("d2", None)  # ... and deleted
    cp.note([(0, "d3"), (0, "d2")])
    assert write() == write() == {}  # d1, then d2 skipped
    (start,) = write().values()  # d3 with its current value, then the end marker
    assert json.loads(log.records[-1][2])["records"] == 3 + 2  # 3 entries, 2 changes
    restored = restore_partition(log.since(start), start)
    assert restored is not None and restored.table == log.table
    assert restored.table["d3"] == {"deadline": 33} and "d2" not in restored.table
    assert cp.since[0] == 2  # the changes written meanwhile count toward the next one


def test_an_unfinished_spread_checkpoint_leaves_the_previous_one_committed():
    rng = random.Random(3)
    log, cp = Log(), Checkpoints(CHANGELOG, every=20, ratio=1.0, per_turn=3)
    clients = _LogClients(log)
    _random_changes(log, rng, 60, keys=30)
    cp.since[0] = 60
    while not (done := _turn(cp, log, clients, rng, 2)):
        pass
    committed = done[(CHANGELOG, 0)]
    cp.since[0] = 100
    assert _turn(cp, log, clients, rng, 2) == {}  # the next one starts ...
    partial = cp.writing[0].start
    assert _turn(cp, log, clients, rng, 2) == {}  # ... the worker dies half-way
    _random_changes(log, rng, 10, keys=30)  # its successor changes the table
    assert restore_partition(log.since(partial), partial) is None  # no end marker
    restored = restore_partition(log.since(committed), committed)
    assert restored is not None and restored.table == log.table
    # a table restored (or dropped) meanwhile: the unfinished checkpoint is dropped (and,
    # still due, a new one starts from the new table)
    new = dict(log.table)
    cp.write({0: new}, clients, clients.put, lambda: None)
    assert cp.writing[0].start > partial and cp.writing[0].table is new
    cp.write({}, clients, clients.put, lambda: None)
    assert cp.writing == {}
