"""Rebuild policies in an empty or wiped Redis from Kafka: configs, then learned state.

1. the last record of each policy in the compacted policies topic (``_record``) gives
   its config, when it was created and the cut of its last reset;
2. the config is created again in Redis with those cuts and a new epoch
   (``RedisPolicyStore.restore``, recorded as a ``rebuild`` change; ``--replace`` drops
   what is there in the same step);
3. the rewards topic is read from its start to its end (the end as it was when the
   rebuild began) and every reward of the policy made since its creation and past its
   reset's cut is applied through the worker's own ``Updater`` with its position in the
   topic, in batches, as the worker would.

What comes out. The statistics are sums: without forgetting every arm's count and sums
(and so θ) equal what the workers had applied, up to the rounding of adding the same
numbers in another order (~1e-12 relative). The multiplier λ of a quality floor or a
budget is not exact: each step depends on the state and the batch it was computed
with, so a replay in other batches walks another path to a nearby value (it keeps
adapting from the next rewards). The positions move the policy's watermarks to the
end of what was replayed, so the worker's rewards held meanwhile (a wiped Redis pauses
them) are skipped as already applied, and those after the end are applied once.
With forgetting (γ < 1) each batch decays what came before it by γ^(batch size): the
rebuilt sums weigh rewards by their place in the replay's batches (per partition in
offset order), not the workers', so counts and sums are close but not equal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policy_store import (
    ConfigError,
    RedisPolicyStore,
    Settings,
    UnknownPolicyError,
)
from producers import EventError, RewardEvent, kafka_config, parse_event

from ._record import PolicyRecord, read_policy_records, rebuilding_key
from ._updater import Updater

Progress = Callable[[int, int, int], None]  # read, total, applied
REBUILD_MARK_SECONDS = 120  # the rebuilding marker's TTL, renewed with every batch


@dataclass
class RebuildResult:
    """What the rebuild did for one policy."""

    name: str
    applied: int = 0
    skipped: int = 0  # rewards of the policy before its creation or reset cut
    rejected: int = 0  # rewards the store refused (unknown arm, wrong dimension, ...)
    version: int = 0


def rebuild(
    settings: Settings,
    store: RedisPolicyStore,
    names: Sequence[str] | None = None,
    *,
    replace: bool = False,
    batch_size: int = 2000,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> dict[str, RebuildResult]:
    """Restore ``names`` (None: every policy the policies topic holds) into ``store``.

    Refuses (``ConfigError``) a policy the topic has no record of, and one Redis holds
    already unless ``replace``. Nothing is written before the records were read."""
    records = read_policy_records(settings, timeout=timeout)
    wanted = sorted(records) if names is None else list(names)
    missing = [n for n in wanted if n not in records]
    if missing:
        known = ", ".join(sorted(records)) or "none"
        raise ConfigError(
            f"no record of {missing} in {settings.topic('policies')} (records: {known}); "
            "a policy is recorded once a stream worker relayed its changes"
        )
    present = [n for n in wanted if _exists(store, n)]
    if present and not replace:
        raise ConfigError(
            f"{present} exist in Redis; rebuild fills an empty or wiped Redis — pass "
            "--replace to delete them first"
        )
    markers = [rebuilding_key(store.keys(n)) for n in wanted]
    for key in markers:  # workers holding these policies' rewards wait for the replay
        store.run(store.client.set, key, "1", ex=REBUILD_MARK_SECONDS)
    try:
        for name in wanted:  # not a deletion: the record keeps its config and cuts
            keep = [rebuilding_key(store.keys(name))]
            store.restore(records[name], replace=name in present, keep=keep)
        results = {n: RebuildResult(n) for n in wanted}
        _replay(
            settings, store, {n: records[n] for n in wanted}, results, batch_size, progress, markers
        )
    finally:
        store.run(store.client.delete, *markers)
    for name, res in results.items():
        res.version = store.version(name)
    return results


def _exists(store: RedisPolicyStore, name: str) -> bool:
    try:
        store.get_config(name)
        return True
    except UnknownPolicyError:
        return False


def _replay(
    settings: Settings,
    store: RedisPolicyStore,
    records: dict[str, PolicyRecord],
    results: dict[str, RebuildResult],
    batch_size: int,
    progress: Progress | None,
    markers: list[str],
) -> None:
    """Read the rewards topic to its end and apply the rewards of ``records``' policies."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    topic = settings.topic("rewards")
    extra = {"group.id": f"{topic}-rebuild", "enable.partition.eof": True}
    c = Consumer(kafka_config(settings, "consumer", **extra))
    updater = Updater(store)
    try:
        meta = c.list_topics(topic, timeout=30).topics[topic]
        # a partition is done at end-of-partition: a broker's high watermark can lag (the
        # embedded one's is only a lower bound); it is the progress line's estimate only
        ends: set[int] = set()
        total = 0
        for p in meta.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends.add(p)
            total += max(hi - lo, 0)
        read = applied = 0
        pending: dict[str, list[tuple[RewardEvent, tuple[int, int]]]] = defaultdict(list)

        def flush() -> int:
            n = 0
            for policy, items in pending.items():
                res = updater.apply([r for r, _ in items], [pos for _, pos in items])
                results[policy].applied += res.applied
                results[policy].rejected += len(res.rejected)
                n += res.applied
            pending.clear()
            for key in markers:
                store.run(store.client.expire, key, REBUILD_MARK_SECONDS)
            return n

        if ends:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            for m in c.consume(batch_size, 0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        ends.discard(m.partition())
                    continue
                p, off = m.partition(), m.offset()
                if p not in ends:
                    continue
                read += 1
                total = max(total, read)
                reward = _reward(m.value())
                rec = records.get(reward.policy) if reward is not None else None
                if rec is None:
                    continue
                if reward.reward_ts < rec.created_at or off <= rec.reset_marks.get(p, -1):
                    results[rec.name].skipped += 1
                    continue
                pending[rec.name].append((reward, (p, off)))
            if sum(len(v) for v in pending.values()) >= batch_size or not ends:
                applied += flush()
            if progress is not None:
                progress(read, total, applied)
            if not ends and pending:
                applied += flush()
    finally:
        c.close()


def _reward(raw: bytes | None) -> RewardEvent | None:
    try:
        return parse_event(raw or b"", RewardEvent)
    except EventError:
        return None
