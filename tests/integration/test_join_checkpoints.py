"""Join table checkpoints on the embedded broker (which never compacts): the engine writes
them while it joins, and a restore reads from the last one to the end of the changelog,
giving the same tables as reading the whole history."""

from __future__ import annotations

import time

import pytest
from _stream_helpers import FULL, Sender, decision, make_policy, outcome, wait_for

from policy_store import InMemoryPolicyStore
from stream_app._batch_join import JoinTables
from stream_app._checkpoint import committed_starts
from stream_app._clients import ConfluentClients
from stream_app._engine import BatchEngine, EngineOptions
from stream_app._updater import Updater


@pytest.mark.parametrize("per_turn", [5000, 40], ids=["one-turn", "spread"])
def test_restore_reads_from_the_last_checkpoint_and_equals_the_full_history(
    settings, topics, unique, per_turn
):
    store = InMemoryPolicyStore()
    cfg = make_policy(store, window_seconds=1.0)
    join = JoinTables({cfg.name: cfg}.get, default_window=1.0, retention=0.5)
    clients = ConfluentClients(settings, topics)
    options = EngineOptions(sweep_interval=0.2, checkpoint_every=200, checkpoint_ratio=1.0)
    engine = BatchEngine(
        topics, join, Updater(store), clients, app_id=f"t{unique}", options=options
    )
    engine.checkpoints.per_turn = per_turn  # "spread": a checkpoint spans several turns
    sender = Sender(settings.kafka_bootstrap, topics)
    engine.start()
    try:
        wait_for(lambda: engine.ready, 60, "the engine's assignment")
        # history: pairs rewarded, then their tombstones dropped (two changes per pair)
        sender.send_all(e for i in range(2000) for e in (decision(i), outcome(i, **FULL)))
        wait_for(lambda: sum(s.n for s in store.read_state(cfg.name).arms.values()) == 2000)
        time.sleep(2.0)  # the tombstones are dropped: the table is empty again
        # the live table: decisions waiting for their outcomes (windows of 1 s)
        sender.send_all(decision(i) for i in range(2000, 2300))
        wait_for(lambda: len(join) == 300, 30, "the open decisions")
        # a checkpoint spread over turns may still be under way: let it complete
        wait_for(lambda: not engine.checkpoints.writing, 60, "the checkpoints under way")
    finally:
        engine.stop()
    live = {p: dict(t) for p, t in join.tables.items()}
    assert sum(len(t) for t in live.values()) == 300

    group = clients.consumer(engine.group_id)
    try:
        starts = committed_starts(group, engine.changelog, sorted(live))
    finally:
        group.close()
    assert sorted(starts) == sorted(live)  # every partition has a checkpoint
    parts = sorted(live)
    tail = clients.restore(engine.changelog, parts, 60, starts)
    full = clients.restore(engine.changelog, parts, 60, {})
    for p in parts:
        assert tail[p].start == starts[p] > 0 and full[p].start is None
        assert tail[p].table == full[p].table == live[p]
        assert tail[p].records == full[p].records - starts[p]
    assert sum(r.records for r in tail.values()) < sum(r.records for r in full.values()) / 4
