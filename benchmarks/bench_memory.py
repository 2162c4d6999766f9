"""Redis memory of one policy: learned state plus exactly-once bookkeeping, by rewards applied.

Setting: one policy (5 arms, 16 features) in an embedded ``redis-server``; rewards applied
through ``RedisPolicyStore.apply`` as the stream worker applies them (batches of 1,000
with their rewards-topic positions over 4 partitions, reward times 1 ms apart: 1,000
rewards/s of stream time, the default dedupe window of 360 s). After each checkpoint
the policy's keys are measured with ``MEMORY USAGE`` (every element counted) and split
into the state, the watermarks and the re-send buckets. Reported: bytes per remembered
decision_id, measured; the steady state at ``--rate`` rewards/s extrapolated from it and
the window, next to the per-decision keys of the previous design (a key with a 7-day TTL
per reward, measured here on ``--legacy`` rewards) extrapolated the same way.

    python benchmarks/bench_memory.py                          # 10k, 100k, 1M rewards
    python benchmarks/bench_memory.py --rewards 10000,100000   # quicker

The formula it checks (docs/operations.md): memory ≈ state + rate × (window + 60 s) ×
bytes per id, the state being arms × (d² + d + C·d + 2C) × 8 bytes plus field overhead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import command_line, emit  # noqa: E402

from policy_store import (  # noqa: E402  # noqa: E402
    DEDUPE_BUCKET_SECONDS,
    DEFAULT_DEDUPE_WINDOW,
    Observation,
    RedisPolicyStore,
    make_config,
)
from stream_app.dev.embedded import EmbeddedRedis  # noqa: E402

N_ARMS, N_FEATURES, PARTITIONS, BATCH = 5, 16, 4, 1000
LEGACY_TTL = 7 * 24 * 3600
BUDGET_MB = 64.0


def _usage(store: RedisPolicyStore, name: str) -> dict[str, int]:
    """Bytes of the policy's keys by part: state (config, state, version), marks, buckets."""
    k = store.keys(name)
    parts = {"state": 0, "marks": 0, "buckets": 0, "legacy": 0, "ids": 0}
    for raw in store.client.scan_iter(match=f"{k.base}:*", count=1000):
        key = raw.decode()
        size = store.client.memory_usage(key, samples=0) or 0
        if key.startswith(f"{k.seen_prefix}:"):
            parts["buckets"] += size
            if key.count(":") > k.seen_prefix.count(":") + 1:  # a bucket set, not an index
                parts["ids"] += store.client.scard(key)
        elif key == k.applied:
            parts["marks"] += size
        elif key.startswith(f"{k.base}:dedupe:"):
            parts["legacy"] += size
            parts["ids"] += 1
        else:
            parts["state"] += size
    return parts


def _observations(
    start: int, n: int, rate: float, positioned: bool, t0: float
) -> list[Observation]:
    arms = [f"arm{k}" for k in range(N_ARMS)]
    out = []
    for i in range(start, start + n):
        x = tuple(((i * 7 + j) % 11) / 10.0 for j in range(N_FEATURES))
        comps = (0.8, 0.1, 0.2, 0.0, 1.0)
        pos = (i % PARTITIONS, i // PARTITIONS, t0 + i / rate) if positioned else None
        out.append(Observation(f"{i:032x}", arms[i % N_ARMS], x, 0.5, 1.0, comps, pos))
    return out


def measure(checkpoints: list[int], rate: float, legacy: int) -> tuple[list[dict], dict]:
    redis = EmbeddedRedis().start()
    try:
        store = RedisPolicyStore.from_url(redis.url, prefix="bench")
        arms = [f"arm{k}" for k in range(N_ARMS)]
        for name in ("bounded", "legacy"):
            store.create(make_config(name=name, arms=arms, n_features=N_FEATURES))
        # reward times end now: the store never lets a partition's clock run ahead of now
        t0 = time.time() - checkpoints[-1] / rate
        rows, done = [], 0
        for target in checkpoints:
            while done < target:
                n = min(BATCH, target - done)
                store.apply("bounded", _observations(done, n, rate, True, t0))
                done += n
            rows.append({"rewards": done, **_usage(store, "bounded")})
        for start in range(0, legacy, BATCH):
            n = min(BATCH, legacy - start)
            store.apply("legacy", _observations(start, n, rate, False, t0))
        return rows, {"rewards": legacy, **_usage(store, "legacy")}
    finally:
        redis.stop()


def report(rows: list[dict], legacy: dict, rate: float, argv: list[str] | None) -> str:
    window = DEFAULT_DEDUPE_WINDOW + DEDUPE_BUCKET_SECONDS  # ids live at most this long
    last = rows[-1]
    per_id = last["buckets"] / max(last["ids"], 1)
    state = last["state"] + last["marks"]
    steady = state + rate * window * per_id
    legacy_per_id = legacy["legacy"] / max(legacy["ids"], 1)
    legacy_steady = legacy["state"] + rate * LEGACY_TTL * legacy_per_id
    lines = [
        f"Command: `{command_line('bench_memory.py', argv)}`  ",
        f"One policy, {N_ARMS} arms, {N_FEATURES} features; rewards at {rate:,.0f}/s of "
        f"stream time; dedupe window {DEFAULT_DEDUPE_WINDOW:.0f} s + {DEDUPE_BUCKET_SECONDS:.0f} s "
        "bucket.",
        "",
        "| rewards applied | state | watermarks | re-send buckets | ids remembered | total |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        total = r["state"] + r["marks"] + r["buckets"]
        lines.append(
            f"| {r['rewards']:,} | {r['state'] / 1024:,.0f} KB | {r['marks']:,} B | "
            f"{r['buckets'] / 2**20:,.1f} MB | {r['ids']:,} | {total / 2**20:,.1f} MB |"
        )
    lines += [
        "",
        f"- bytes per remembered id (measured at {last['rewards']:,}): {per_id:.0f}",
        f"- steady state at {rate:,.0f} rewards/s: {state / 1024:,.0f} KB + {rate:,.0f} × "
        f"{window:.0f} s × {per_id:.0f} B = **{steady / 2**20:,.1f} MB** "
        f"(budget {BUDGET_MB:.0f} MB: {'met' if steady <= BUDGET_MB * 2**20 else 'NOT met'})",
        f"- previous design, one key per decision for 7 days ({legacy_per_id:.0f} B each, "
        f"measured on {legacy['rewards']:,}): {legacy_steady / 2**30:,.1f} GB at the same rate",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rewards", default="10000,100000,1000000", help="checkpoints")
    ap.add_argument("--rate", type=float, default=1000.0, help="rewards per second")
    ap.add_argument("--legacy", type=int, default=20000, help="rewards for the old design")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    checkpoints = sorted(int(x) for x in args.rewards.split(","))
    rows, legacy = measure(checkpoints, args.rate, args.legacy)
    return emit(report(rows, legacy, args.rate, argv), args.out)


if __name__ == "__main__":
    sys.exit(main())
