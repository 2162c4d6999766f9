"""Per-minute aggregates and loop-health counters kept in Redis for the dashboard,
``rl-commons inspect`` and ``rl-commons report``.

Layout (all in the policy's hash-tag slot, see ``policy_store._keys``):

    {prefix}:{name}:agg:<minute>   hash  "<cohort>|<arm>|<metric>" -> float   (TTL 7 days)
                                         metrics: n, reward, quality, cost, latency, errors
                                         (sums; divide by n for means)
    {prefix}:{name}:health         hash  counter name -> int  (events_in, joined, rewards,
                                         expired, late, duplicates, dlq:<reason>,
                                         missing:<component>, batches, applied)
    {prefix}:{name}:freshness      hash  last_apply_ms, last_apply_latency_ms, last_lag_ms

Writers add to them in a pipeline after a successful apply; they are
observability data (a worker crash between apply and this write may lose or
repeat one batch here) — the parameters themselves are exactly-once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from policy_store import PolicyKeys

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


def incr_health(pipe, keys: PolicyKeys, counters: Mapping[str, int]) -> None:
    for name, v in counters.items():
        if v:
            pipe.hincrby(keys.extra("health"), name, int(v))


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
