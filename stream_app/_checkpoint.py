"""Checkpoints of the join tables in their changelog: a restore reads a bounded tail.

The changelog of a join table (``_batch_join``: key = decision_id, value = the entry's
JSON, None = deleted) is only compacted by a broker that compacts (the embedded broker
never does; Kafka only cleans closed segments), so reading it from the beginning costs
the whole history. A checkpoint re-writes the live table of one partition into its
changelog partition, between two markers, in one go on the engine's thread (no other
change of that table comes in between)::

    START {"checkpoint": id, "n": n}, n entries (key, value as any change), END {"checkpoint": id}

Before it starts, every change of the table has been flushed, so the table equals what
the changelog holds up to the start marker; the checkpoint restates exactly that table,
so replaying the changelog from the start marker gives the same table as replaying it
from the beginning (entries deleted earlier are not in the table, changes made later
follow the end marker). Once the end marker is acknowledged, the engine commits the
start marker's offset as the changelog partition's offset in its consumer group (so on
Kafka a worker that was fenced out of the group cannot move it) and a restore reads from
there. The restore checks that the record at that offset is the start marker and that
the end marker with the same id sits exactly ``n + 1`` offsets later (nobody else's
record in between, nothing missing); otherwise, or with no offset committed (a changelog
older than checkpoints), it reads the partition from the beginning, which is always
right. A crash in the middle of a checkpoint leaves the committed offset on the
previous complete one; the partial one's records restate the same entries and do no
harm.

When: ``Checkpoints`` writes one once the changes since the last one reach both
``every`` and ``ratio`` × the live table, so the extra writes cost at most 1/ratio of
the change traffic and a restore reads at most (1 + ratio) × the live table + ``every``
records (plus the changes of one batch), whatever the history.

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


def _marker(cid: str, n: int | None = None) -> bytes:
    value: dict[str, Any] = {"status": "expired", "deadline": 0, "policy": None, "checkpoint": cid}
    if n is not None:
        value["n"] = n
    return json.dumps(value).encode()


def checkpoint_records(
    table: Mapping[str, State], cid: str | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """The records of a checkpoint of ``table``: the start marker, every entry, the end."""
    cid = cid or os.urandom(8).hex()
    yield START, _marker(cid, len(table))
    for key, state in table.items():
        yield key.encode(), encode_entry(state)  # type: ignore[misc]
    yield END, _marker(cid)


def _end_index(records: Sequence[Record], start: int) -> int | None:
    """Index of the end marker of the checkpoint whose start marker is ``records[0]`` at
    offset ``start``, None unless both markers are where they must be."""
    if not records or records[0][0] != start or records[0][1] != START or not records[0][2]:
        return None
    head = json.loads(records[0][2])
    target = start + head["n"] + 1
    i = min(head["n"] + 1, len(records) - 1)
    while i > 0 and records[i][0] > target:  # fewer records than offsets: compacted
        i -= 1
    off, key, value = records[i]
    if off != target or key != END or value is None:
        return None
    return i if json.loads(value)["checkpoint"] == head["checkpoint"] else None


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
class Checkpoints:
    """The checkpoints of one changelog: when to write them, writing them, restoring.

    A partition is due once the changes since its last checkpoint (or since the records
    its restore read after one) reach ``every`` and ``ratio`` × its live table, whichever
    is more; ``every`` = 0: never."""

    changelog: str
    every: int = 10_000
    ratio: float = 4.0
    since: Counter = field(default_factory=Counter)
    written: int = 0  # records written by checkpoints (markers included)
    _marker_producer: Any = None

    def note(self, changes: Iterable[tuple[int, str]]) -> None:
        """Count a batch's changes (``Outputs.changes`` keys: (partition, decision_id))."""
        since = self.since
        for p, _ in changes:
            since[p] += 1

    def due(self, tables: Mapping[int, Sized]) -> list[int]:
        """The partitions of ``tables`` to checkpoint now."""
        if self.every <= 0:
            return []
        since = self.since
        return [p for p, t in tables.items() if since[p] >= max(self.every, self.ratio * len(t))]

    def write(
        self,
        tables: Mapping[int, Mapping[str, State]],
        clients: Any,
        produce: Callable[[str, bytes, bytes, int], None],
        flush: Callable[[], None],
    ) -> dict[tuple[str, int], int]:
        """Checkpoint the partitions that are due, one after the other, and return where
        each one starts, as offsets to commit. Called when every change written so far
        is flushed. The start marker goes through a producer of ``clients`` that reports
        every delivery (the worker's producer reports only failures), flushed, for its
        offset; the rest through ``produce(topic, key, value, partition)``, ``flush``."""
        starts: dict[tuple[str, int], int] = {}
        if self._marker_producer is None and self.every > 0:
            # made before it is needed: it connects in the background (~0.5 s)
            self._marker_producer = clients.producer(_ignore, every_delivery=True)
        for p in self.due(tables):
            records = checkpoint_records(tables[p])
            start = self._start(*next(records), p)
            if start is None:
                continue  # not acknowledged: try again at the next turn
            for key, value in records:
                produce(self.changelog, key, value, p)
            flush()
            starts[(self.changelog, p)] = start
            self.since[p] = 0
            self.written += len(tables[p]) + 2
        return starts

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
