"""Checkpoints of the join tables in their changelog: a restore reads a bounded tail.

The changelog of a join table (``_batch_join``: key = decision_id, value = the entry's
JSON, None = deleted) is only compacted by a broker that compacts (the embedded broker
never does; Kafka only cleans closed segments), so reading it from the beginning costs
the whole history. A checkpoint re-writes the live table of one partition into its
changelog partition, between two markers::

    START {"checkpoint": id, "n": n}, entries and changes, END {"checkpoint": id, "records": m}

It is written over several turns of the engine's loop, at most ``per_turn`` entries a
turn, so no turn pauses long; the table's own changes go on in between. At the start
(every change of the table flushed, so the table equals what the changelog holds up to
the start marker) it takes the table's n keys; each turn it writes the next keys with
the value they have *now*, skipping those deleted meanwhile. Why replaying from the
start marker gives the table the whole history gives (last write of each key wins):

- a key changed or deleted after the start marker: its last record overall is after the
  marker, and the checkpoint never writes a value older than one already in the log (the
  current value is the last one written), so the last record after the marker is right;
- a key not changed after the start: it was in the table at the start (the checkpoint
  writes it, unchanged) or not (deleted before, or never there: absent both ways).

A snapshot of the values taken at the start would break the first case: a key changed
after the start and written later from the snapshot would get its old value back.

The end marker counts the m records of the partition between the markers (entries plus
the changes written meanwhile, all by this worker). Once it is acknowledged, the engine
commits the start marker's offset as the changelog partition's offset in its consumer
group (so on Kafka a worker that was fenced out of the group cannot move it) and a
restore reads from there. The restore checks that the record at that offset is the start
marker and that the end marker with the same id sits exactly ``m + 1`` offsets later
(nobody else's record in between, nothing missing; an end marker without ``m``, written
in one go by an older worker, sits ``n + 1`` later); otherwise, or with no offset
committed (a changelog older than checkpoints), it reads the partition from the
beginning, which is always right. A crash, a failed write or a lost partition in the
middle of a checkpoint leaves the committed offset on the previous complete one (an
unfinished checkpoint is dropped when its table is no longer the one it started from);
the partial one's records restate current entries and do no harm.

When: ``Checkpoints`` starts one once the changes since the last one reach both
``every`` and ``ratio`` × the live table, so the extra writes cost at most 1/ratio of
the change traffic and a restore reads at most (1 + ratio) × the live table + ``every``
records, plus the changes written while the last checkpoint was written.

Marker values look like expired tombstones past their deadline, so a worker older than
checkpoints restores them as two entries and sweeps them away at once.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from ._batch_join import decode_entry, encode_entry
from ._join import State

log = logging.getLogger(__name__)

MARKER = b"\x00rlc-checkpoint-"
START, END = MARKER + b"start", MARKER + b"end"

#: one changelog record as read back: (offset, key, raw value or None)
Record = tuple[int, bytes, bytes | None]


@dataclass
class Restored:
    """A partition's table read back from its changelog, and what the read cost."""

    table: dict[str, State]
    records: int  # records read
    since: int  # records after the checkpoint (all of them without one)
    start: int | None = None  # offset of the checkpoint read from, None = the beginning


def _marker(cid: str, **counts: int) -> bytes:
    value: dict[str, Any] = {"status": "expired", "deadline": 0, "policy": None, "checkpoint": cid}
    value.update(counts)
    return json.dumps(value).encode()


def checkpoint_records(
    table: Mapping[str, State], cid: str | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """The records of a checkpoint of ``table`` written in one go: the start marker, every
    entry, the end."""
    cid = cid or os.urandom(8).hex()
    yield START, _marker(cid, n=len(table))
    for key, state in table.items():
        yield key.encode(), encode_entry(state)  # type: ignore[misc]
    yield END, _marker(cid, records=len(table))


def _end_index(records: Sequence[Record], start: int) -> int | None:
    """Index of the end marker of the checkpoint whose start marker is ``records[0]`` at
    offset ``start``, None unless both markers are where they must be."""
    if not records or records[0][0] != start or records[0][1] != START or not records[0][2]:
        return None
    head = json.loads(records[0][2])
    for i in range(1, len(records)):
        off, key, value = records[i]
        if key != END or value is None:
            continue
        end = json.loads(value)
        if end["checkpoint"] != head["checkpoint"]:
            return None  # another checkpoint's end first: this one never finished
        return i if off == start + end.get("records", head["n"]) + 1 else None
    return None


def restore_partition(records: Sequence[Record], start: int | None = None) -> Restored | None:
    """The table of a changelog partition from its ``records`` (oldest first), read from
    the beginning (``start`` None) or from a checkpoint's start marker at ``start``; None
    when ``start`` is not a complete checkpoint (read from the beginning instead)."""
    since = len(records)
    if start is not None:
        end = _end_index(records, start)
        if end is None:
            return None
        since = len(records) - end - 1
    raw: dict[bytes, bytes] = {}
    for _, key, value in records:  # only the last write of a key is decoded
        if key.startswith(MARKER):
            continue
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    table = {k.decode(): decode_entry(v) for k, v in raw.items()}
    return Restored(table, len(records), since, start)


def _ignore(err: Any, msg: Any) -> None:
    """Deliveries of the start markers are reported to their own callbacks."""


@dataclass
class _Writing:
    """A checkpoint being written: where it starts, the keys it restates, how far it got."""

    cid: str
    start: int  # offset of the start marker
    table: Mapping[str, State]  # the table it restates (another one: dropped)
    keys: list[str]  # the table's keys at the start
    base: int  # the partition's change count at the start
    done: int = 0  # keys handled
    entries: int = 0  # entries written (keys deleted meanwhile are skipped)


@dataclass
class Checkpoints:
    """The checkpoints of one changelog: when to write them, writing them, restoring.

    A partition is due once the changes since its last checkpoint (or since the records
    its restore read after one) reach ``every`` and ``ratio`` × its live table, whichever
    is more; ``every`` = 0: never. A checkpoint writes at most ``per_turn`` entries per
    call of ``write`` (all partitions together)."""

    changelog: str
    every: int = 10_000
    ratio: float = 4.0
    per_turn: int = 5_000
    since: Counter = field(default_factory=Counter)
    written: int = 0  # records written by checkpoints (markers included)
    writing: dict[int, _Writing] = field(default_factory=dict)
    _marker_producer: Any = None

    def note(self, changes: Iterable[tuple[int, str]]) -> None:
        """Count a batch's changes (``Outputs.changes`` keys: (partition, decision_id))."""
        since = self.since
        for p, _ in changes:
            since[p] += 1

    def due(self, tables: Mapping[int, Sized]) -> list[int]:
        """The partitions of ``tables`` to start a checkpoint of now."""
        if self.every <= 0:
            return []
        since, writing = self.since, self.writing
        return [
            p
            for p, t in tables.items()
            if p not in writing and since[p] >= max(self.every, self.ratio * len(t))
        ]

    def write(
        self,
        tables: Mapping[int, Mapping[str, State]],
        clients: Any,
        produce: Callable[[str, bytes, bytes, int], None],
        flush: Callable[[], None],
    ) -> dict[tuple[str, int], int]:
        """Start the checkpoints that are due, write the next ``per_turn`` entries of the
        ones under way, and return where each one completed now starts, as offsets to
        commit. Called when every change written so far is flushed. The start marker goes
        through a producer of ``clients`` that reports every delivery (the worker's
        producer reports only failures), flushed, for its offset; the rest through
        ``produce(topic, key, value, partition)``, then one ``flush``."""
        if self._marker_producer is None and self.every > 0:
            # made before it is needed: it connects in the background (~0.5 s)
            self._marker_producer = clients.producer(_ignore, every_delivery=True)
        for p, w in list(self.writing.items()):
            if tables.get(p) is not w.table:  # lost, restored or dropped meanwhile
                del self.writing[p]
        for p in self.due(tables):
            cid = os.urandom(8).hex()
            start = self._start(START, _marker(cid, n=len(tables[p])), p)
            if start is not None:  # else not acknowledged: try again at the next turn
                self.writing[p] = _Writing(cid, start, tables[p], list(tables[p]), self.since[p])
        budget, done, wrote = self.per_turn, [], False
        for p, w in self.writing.items():
            if budget <= 0:
                break
            budget -= self._write_some(w, p, budget, produce)
            wrote = True
            if w.done == len(w.keys):
                changes = self.since[p] - w.base
                produce(self.changelog, END, _marker(w.cid, records=w.entries + changes), p)
                done.append(p)
        if wrote:
            flush()
        starts: dict[tuple[str, int], int] = {}
        for p in done:
            w = self.writing.pop(p)
            starts[(self.changelog, p)] = w.start
            self.since[p] -= w.base  # the changes written meanwhile are read after it
            self.written += w.entries + 2
        return starts

    def _write_some(
        self, w: _Writing, p: int, budget: int, produce: Callable[[str, bytes, bytes, int], None]
    ) -> int:
        """Write the current values of the next ``budget`` keys of ``w`` (skipping keys
        deleted since the start); the number of keys handled."""
        keys, table, topic = w.keys, w.table, self.changelog
        stop = min(len(keys), w.done + budget)
        for i in range(w.done, stop):
            state = table.get(keys[i])
            if state is not None:
                produce(topic, keys[i].encode(), encode_entry(state), p)  # type: ignore[arg-type]
                w.entries += 1
        handled, w.done = stop - w.done, stop
        return handled

    def _start(self, key: bytes, value: bytes, partition: int) -> int | None:
        """Write a start marker; its offset once acknowledged, None if it was not."""
        got: list[int] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                got.append(msg.offset())
            else:
                log.warning("a checkpoint of %s[%d] failed: %s", self.changelog, partition, err)

        self._marker_producer.produce(self.changelog, value, key, partition, on_delivery=delivered)
        self._marker_producer.flush(30)
        return got[0] if got else None

    def restore(
        self, clients: Any, consumer: Any, partitions: list[int], timeout: float
    ) -> dict[int, dict[str, State]]:
        """The tables of ``partitions``, read by ``clients.restore`` from the checkpoints
        that ``consumer``'s group committed (from the beginning where there is none)."""
        starts = committed_starts(consumer, self.changelog, partitions)
        restored = clients.restore(self.changelog, partitions, timeout, starts)
        for p, r in restored.items():
            self.since[p] = r.since
        log.info(
            "restored %s partitions %s: %d entries from %d records (checkpoints at %s)",
            self.changelog,
            partitions,
            sum(len(r.table) for r in restored.values()),
            sum(r.records for r in restored.values()),
            starts or "none",
        )
        return {p: r.table for p, r in restored.items()}


def committed_starts(consumer: Any, changelog: str, partitions: list[int]) -> dict[int, int]:
    """The checkpoint offsets ``consumer``'s group committed for ``partitions`` of
    ``changelog`` (none: read from the beginning)."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        tps = consumer.committed([TopicPartition(changelog, p) for p in partitions], timeout=30)
    except KafkaException as exc:
        log.warning("cannot read the checkpoint offsets, restoring from the beginning: %s", exc)
        return {}
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
