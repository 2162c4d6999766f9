"""Per-minute aggregates and loop-health counters kept in Redis for the dashboard,
``rl-commons inspect`` and ``rl-commons report``.

Layout (all in the policy's hash-tag slot, see ``policy_store._keys``):

    {prefix}:{name}:agg:<minute>   hash  "<cohort>|<arm>|<metric>" -> float   (TTL 7 days)
                                         metrics: n, reward, quality, cost, latency, errors
                                         (sums; divide by n for means)
                                         + "dual" -> the multiplier λ after the minute's
                                         last applied batch (``record_dual``)
    {prefix}:{name}:health         hash  counter name -> int  (events_in, joined, rewards,
                                         expired, late, duplicates, dlq:<reason>,
                                         missing:<component>, batches, applied)
    {prefix}:{name}:freshness      hash  last_apply_ms, last_apply_latency_ms, last_lag_ms

Writers add to them in a pipeline after a successful apply; they are
observability data (a worker crash between apply and this write may lose or
repeat one batch here) — the parameters themselves are exactly-once.

The worker writes through an ``AggregateSink`` (``RedisAggregates`` beside a
``RedisPolicyStore``; none beside an in-memory store), so the updater knows
nothing of Redis.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import redis

from policy_store import PolicyKeys, StoreUnavailableError
from producers import RewardEvent

METRICS = ("n", "reward", "quality", "cost", "latency", "errors")
AGG_TTL_SECONDS = 7 * 24 * 3600


def minute(ts: float) -> int:
    return int(ts // 60)


def agg_key(keys: PolicyKeys, bucket: int) -> str:
    return keys.extra(f"agg:{bucket}")


@dataclass
class CohortArmStats:
    """Sums for one (cohort, arm) in one bucket."""

    n: float = 0.0
    reward: float = 0.0
    quality: float = 0.0
    cost: float = 0.0
    latency: float = 0.0
    errors: float = 0.0

    def mean(self, metric: str) -> float | None:
        return getattr(self, metric) / self.n if self.n else None


@dataclass
class Bucket:
    minute: int
    cells: dict[tuple[str, str], CohortArmStats] = field(default_factory=dict)
    dual: float | None = None  # λ after the minute's last applied batch (``record_dual``)


def add_rewards(pipe, keys: PolicyKeys, rewards: Iterable[Mapping]) -> None:
    """Queue HINCRBYFLOATs for rewards (dicts or RewardEvents as dicts) on a redis pipeline.

    Each reward needs: cohort, arm, reward, reward_ts and components (quality/cost/latency/error).
    """
    sums: dict[tuple[int, str], float] = defaultdict(float)
    for r in rewards:
        comp = r.get("components") or {}
        b = minute(float(r["reward_ts"]))
        prefix = f"{r['cohort']}|{r['arm']}|"
        sums[(b, prefix + "n")] += 1.0
        sums[(b, prefix + "reward")] += float(r["reward"])
        for m in ("quality", "cost", "latency"):
            v = comp.get(m)
            if v is not None:
                sums[(b, prefix + m)] += float(v)
        if comp.get("error"):
            sums[(b, prefix + "errors")] += 1.0
    touched = set()
    for (b, fld), v in sums.items():
        pipe.hincrbyfloat(agg_key(keys, b), fld, v)
        touched.add(b)
    for b in touched:
        pipe.expire(agg_key(keys, b), AGG_TTL_SECONDS)


# copies the state's multiplier (absent: nothing) into a minute's bucket, inside Redis
_COPY_DUAL = """
local v = redis.call('HGET', KEYS[1], 'dual')
if v then
  redis.call('HSET', KEYS[2], 'dual', v)
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 0
"""


def record_dual(pipe, keys: PolicyKeys, ts: float) -> None:
    """Queue on ``pipe`` a copy of the policy's multiplier λ (the ``dual`` field of its state
    hash) into the bucket of minute ``ts``, so the dashboard can draw λ over time. Done in
    Redis by a three-line script (no extra round trip, the value the apply just wrote);
    nothing for a policy whose state has no ``dual`` (weighted objective, λ never moved)."""
    bucket = agg_key(keys, minute(ts))
    pipe.eval(_COPY_DUAL, 2, keys.state, bucket, AGG_TTL_SECONDS)


def incr_health(pipe, keys: PolicyKeys, counters: Mapping[str, int]) -> None:
    for name, v in counters.items():
        if v:
            pipe.hincrby(keys.extra("health"), name, int(v))


@dataclass(frozen=True)
class AppliedBatch:
    """What one successful apply of one policy's rewards did, for the dashboard."""

    fresh: Sequence[RewardEvent]  # rewards the store had not seen (replays left out)
    applied: int
    duplicates: int
    latency: float  # seconds the apply took
    lag: float  # largest outcome-produced -> applied delay in the batch, seconds
    now: float  # wall clock of the apply


class AggregateSink(Protocol):
    """Where the worker writes the dashboard's aggregates, freshness and health counters.

    Both methods raise ``StoreUnavailableError`` when the backing store cannot be reached.
    """

    def add_batch(self, policy: str, batch: AppliedBatch) -> None:
        """Per-minute aggregates of the fresh rewards, batch counters and freshness."""

    def add_health(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Add loop-health counters, per policy."""


class RedisAggregates:
    """``AggregateSink`` writing the layout above with one pipeline per call."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def add_batch(self, policy: str, batch: AppliedBatch) -> None:
        keys = PolicyKeys(self.prefix, policy)
        pipe = self.client.pipeline(transaction=False)
        add_rewards(pipe, keys, [r.model_dump() for r in batch.fresh])
        counters = {"batches": 1, "applied": batch.applied, "duplicates": batch.duplicates}
        incr_health(pipe, keys, counters)
        record_dual(pipe, keys, batch.now)
        pipe.hset(
            keys.extra("freshness"),
            mapping={
                "last_apply_ms": repr(round(batch.now * 1000.0, 3)),
                "last_apply_latency_ms": repr(round(batch.latency * 1000.0, 3)),
                "last_lag_ms": repr(round(batch.lag * 1000.0, 3)),
            },
        )
        with self._unavailable():
            pipe.execute()

    def add_health(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for policy, counters in counts.items():
            incr_health(pipe, PolicyKeys(self.prefix, policy), counters)
        with self._unavailable():
            pipe.execute()

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(
                f"could not write the aggregates to Redis ({exc}); "
                "check that Redis at RL_COMMONS_REDIS_URL is up (the worker retries)"
            ) from exc


def read_buckets(
    client, keys: PolicyKeys, minutes: int = 60, now: float | None = None
) -> list[Bucket]:
    """The last ``minutes`` buckets (oldest first), empty ones included."""
    now = time.time() if now is None else now
    last = minute(now)
    first = last - minutes + 1
    pipe = client.pipeline(transaction=False)
    for b in range(first, last + 1):
        pipe.hgetall(agg_key(keys, b))
    out = []
    for b, raw in zip(range(first, last + 1), pipe.execute(), strict=True):
        bucket = Bucket(minute=b)
        for f, v in raw.items():
            f = f.decode() if isinstance(f, bytes) else f
            if f == "dual":
                bucket.dual = float(v)
                continue
            try:
                cohort, arm, metric = f.split("|")
            except ValueError:
                continue
            if metric not in METRICS:
                continue
            cell = bucket.cells.setdefault((cohort, arm), CohortArmStats())
            setattr(cell, metric, float(v))
        out.append(bucket)
    return out


def read_health(client, keys: PolicyKeys) -> dict[str, int]:
    raw = client.hgetall(keys.extra("health"))
    return {(k.decode() if isinstance(k, bytes) else k): int(float(v)) for k, v in raw.items()}


def read_freshness(client, keys: PolicyKeys) -> dict[str, float]:
    raw = client.hgetall(keys.extra("freshness"))
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
