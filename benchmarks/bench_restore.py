"""Join-table restore on the embedded broker (which never compacts): time and records read,
with and without checkpoints, by history length; and what checkpointing costs one worker.

    python benchmarks/bench_restore.py                                  # 50k, 200k, 500k
    python benchmarks/bench_restore.py --changes 50000,200000 --pairs 0  # restore only

1. restore: one changelog partition per history length and mode, written as the engine
   writes it (batches of 2,000 changes, flushed): every key is opened (a decision's entry),
   closed ``--live``/2 keys later (a rewarded tombstone) and deleted ``--live`` keys later,
   so the live table stays at ``--live`` entries (half pending decisions, half tombstones;
   real entries of a 16-feature policy made by ``JoinTables``) whatever the history. With
   checkpoints, ``Checkpoints`` (the engine's defaults: every max(10,000, 4 x live) changes)
   writes them as the engine does. Then ``ConfluentClients.restore`` reads the partition
   back as a newly assigned worker does: from the beginning (without) or from the last
   checkpoint (with); the two tables are checked equal.
2. throughput: one in-process engine (``BatchEngine``, in-memory store) drains ``--pairs``
   pre-produced decisions + outcomes from fresh topics; rewards/s from its assignment to
   the last reward applied. Tombstones are kept 1 s (instead of 300 s), so the table
   reaches its steady state (about rate x 1 s) within the run and is checkpointed at the
   engine's ratio (4 x the live table, ``every`` lowered to 1,000 for the short run). Rounds
   alternate checkpoints off / on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _output import command_line, emit  # noqa: E402

from policy_store import InMemoryPolicyStore, Settings, make_config  # noqa: E402
from producers import DecisionEvent, OutcomeEvent, Topics, create_topics  # noqa: E402
from stream_app._batch_join import (  # noqa: E402
    DECISIONS,
    OUTCOMES,
    JoinTables,
    Outputs,
    Source,
    encode_entry,
)
from stream_app._checkpoint import Checkpoints  # noqa: E402
from stream_app._clients import ConfluentClients  # noqa: E402
from stream_app._engine import BatchEngine, EngineOptions  # noqa: E402
from stream_app._updater import Updater  # noqa: E402

D, ARMS, BATCH = 16, ("a", "b", "c", "d", "e"), 2000
WRITES: list[float] = []  # seconds per entry of every checkpoint written
CFG = make_config(name="p", arms=ARMS, n_features=D, reward={"window_seconds": 600.0})


def _events(i: int) -> tuple[bytes, bytes]:
    dec = DecisionEvent(
        decision_id=f"d{i}",
        policy="p",
        policy_version=0,
        timestamp=time.time(),
        arms=ARMS,
        arm=ARMS[i % len(ARMS)],
        propensity=0.2,
        features=tuple(0.1 * ((i + k) % 7) for k in range(D)),
    )
    out = OutcomeEvent(
        decision_id=f"d{i}", timestamp=time.time(), quality=0.8, cost=0.1, latency=0.2
    )
    return dec.to_bytes(), out.to_bytes()


def _templates() -> tuple[dict, dict]:
    """A real pending entry and a real rewarded tombstone (16 features)."""
    t = JoinTables({"p": CFG}.get, default_window=600.0, retention=300.0)
    t.assign(0, {})
    dec, out = _events(1)
    o1, o2 = Outputs(), Outputs()
    t.handle(DECISIONS, dec, Source("d", 0, 0, b"d1"), time.time(), o1)
    pending = dict(o1.changes[(0, "d1")])
    t.handle(OUTCOMES, out, Source("o", 0, 0, b"d1"), time.time(), o2)
    return pending, dict(o2.changes[(0, "d1")])


def write_history(
    clients: ConfluentClients,
    topic: str,
    changes: int,
    live: int,
    checkpoints: bool,
    entries: tuple[dict, dict],
) -> tuple[int | None, int]:
    """Write ``changes`` table changes (``entries``: a pending one, a tombstone) and
    checkpoints; the last checkpoint's offset (None without) and the records written."""
    pending, tomb = entries
    producer = clients.producer(lambda err, msg: None)
    cp = Checkpoints(topic) if checkpoints else None
    table: dict[str, dict] = {}
    batch: dict[tuple[int, str], dict | None] = {}
    start, written, i, half, spent = None, 0, 0, live // 2, 0.0

    def produce(topic_: str, key: bytes, value: bytes | None, p: int) -> None:
        while True:
            try:
                return producer.produce(topic_, value, key, p)
            except BufferError:
                producer.poll(0.05)

    while written < changes:
        batch[(0, f"k{i}")] = pending
        if i >= half:
            batch[(0, f"k{i - half}")] = tomb
        if i >= live:
            batch[(0, f"k{i - live}")] = None
        i += 1
        if len(batch) >= BATCH or written + len(batch) >= changes:
            for (_, key), state in batch.items():
                produce(topic, key.encode(), encode_entry(state), 0)
                if state is None:
                    table.pop(key, None)
                else:
                    table[key] = state
            producer.flush(60)
            written += len(batch)
            if cp is not None:
                cp.note(batch)
                t0 = time.perf_counter()
                got = cp.write({0: table}, clients, produce, lambda: producer.flush(60))
                spent += time.perf_counter() - t0  # a checkpoint spans several writes
                if got:
                    WRITES.append(spent / len(table))
                    spent = 0.0
                start = got.get((topic, 0), start)
            batch = {}
    return start, written + (cp.written if cp else 0)


def restore_row(clients: ConfluentClients, admin, changes: int, live: int) -> list[str]:
    from confluent_kafka.admin import NewTopic

    cells, tables, entries = [], [], _templates()
    for checkpoints in (False, True):
        topic = f"restore-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        time.sleep(0.5)
        start, written = write_history(clients, topic, changes, live, checkpoints, entries)
        starts = {0: start} if start is not None else {}
        t0 = time.perf_counter()
        restored = clients.restore(topic, [0], 600, starts)[0]
        took = time.perf_counter() - t0
        tables.append(restored.table)
        cells += [f"{written:,}", f"{restored.records:,}", f"{took:.2f} s"]
    assert tables[0] == tables[1] and len(tables[0]) == live, "restores differ"
    return [f"{changes:,}", *cells]


def throughput(bootstrap: str, pairs: int, checkpoint_every: int) -> tuple[float, float]:
    """Rewards/s of one in-process engine draining ``pairs`` pre-produced pairs, and the
    records its checkpoints wrote per table change."""
    from confluent_kafka import Producer

    topics = Topics(prefix=f"rb{uuid.uuid4().hex[:8]}.")
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=topics.prefix)
    create_topics(settings, topics, partitions=4)
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    for i in range(pairs):
        dec, out = _events(i)
        for topic, value in ((topics.decisions, dec), (topics.outcomes, out)):
            while True:
                try:
                    p.produce(topic, value, f"d{i}".encode())
                    break
                except BufferError:
                    p.poll(0.05)
    p.flush(60)
    store = InMemoryPolicyStore()
    store.create(CFG)
    join = JoinTables({"p": CFG}.get, default_window=600.0, retention=1.0)
    options = EngineOptions(checkpoint_every=checkpoint_every)
    clients = ConfluentClients(settings, topics)
    engine = BatchEngine(
        topics, join, Updater(store), clients, app_id=topics.prefix, options=options
    )
    changes = [0]
    note = engine.checkpoints.note
    engine.checkpoints.note = lambda c: (changes.__setitem__(0, changes[0] + len(c)), note(c))
    engine.start()
    try:
        while not engine.ready:
            time.sleep(0.01)
        t0 = time.perf_counter()
        while sum(s.n for s in store.read_state("p").arms.values()) < pairs:
            time.sleep(0.01)
        took = time.perf_counter() - t0
    finally:
        engine.stop()
    return pairs / took, engine.checkpoints.written / max(changes[0], 1)


def run(args: argparse.Namespace) -> str:
    from confluent_kafka.admin import AdminClient

    from stream_app.dev.embedded import EmbeddedBroker

    broker = EmbeddedBroker().start()
    lines = [f"`{command_line('bench_restore.py', args.argv)}`", ""]
    try:
        settings = Settings(kafka_bootstrap=broker.bootstrap)
        clients = ConfluentClients(settings, Topics())
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        if args.changes:
            lines += [
                f"Restore of one partition, live table {args.live:,} entries:",
                "",
                "| changes | written | read | restore | written (ckpt) | read (ckpt) "
                "| restore (ckpt) |",
                "|---|---|---|---|---|---|---|",
            ]
            for n in args.changes:
                lines.append("| " + " | ".join(restore_row(clients, admin, n, args.live)) + " |")
                print(lines[-1], flush=True)
            lines += [
                "",
                f"A checkpoint took {statistics.median(WRITES) * 1e6:.0f} µs per entry "
                f"(median of {len(WRITES)}: encode, produce, flush, over the turns it spans).",
            ]
        if args.pairs:
            runs: dict[str, list[float]] = {"off": [], "on": []}
            extra: list[float] = []
            for _ in range(args.rounds):
                for mode, every in (("off", 0), ("on", 1000)):
                    rate, written = throughput(broker.bootstrap, args.pairs, every)
                    runs[mode].append(rate)
                    extra += [written] if every else []
                    print(mode, round(rate), written, flush=True)
            off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
            lines += [
                "",
                f"One engine draining {args.pairs:,} pairs, {args.rounds} rounds each "
                "(median rewards/s):",
                "",
                "| checkpoints | rewards/s | runs | checkpoint records per table change |",
                "|---|---|---|---|",
                f"| off | {off:,.0f} | {', '.join(f'{r:,.0f}' for r in runs['off'])} | 0 |",
                f"| on, every max(1,000, 4 x live) | {on:,.0f} | "
                f"{', '.join(f'{r:,.0f}' for r in runs['on'])} | "
                f"{', '.join(f'{x:.2f}' for x in extra)} |",
                "",
                f"ratio on / off: {on / off:.3f}",
            ]
    finally:
        broker.stop()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--changes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[50_000, 200_000, 500_000],
        help="history lengths (table changes), comma-separated",
    )
    ap.add_argument("--live", type=int, default=10_000, help="live table entries")
    ap.add_argument("--pairs", type=int, default=20_000, help="pairs per throughput run (0: skip)")
    ap.add_argument("--rounds", type=int, default=3, help="throughput runs per mode")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    return emit(run(args), args.out)


if __name__ == "__main__":
    sys.exit(main())
