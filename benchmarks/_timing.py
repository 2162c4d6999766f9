"""Latency timing shared by the benchmarks: every call timed alone, callers taking turns.

Within a block one caller runs back to back (as a proxy calling it in a loop would);
taking turns block by block spreads the slow phases of a shared machine over all of
them, so their ratios stay meaningful. The garbage collector runs only between blocks,
and the order of the callers rotates from block to block: the first calls after a full
collection run on cold caches (several times slower for a few calls), and a fixed order
would charge all of that to the first caller.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence

import numpy as np


def measure(
    fns: dict[str, Callable], inputs: Sequence, iterations: int, blocks: int = 20
) -> dict[str, np.ndarray]:
    """Nanoseconds of each call of each function, by name."""
    times: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    per_block = max(1, iterations // blocks)
    clock = time.perf_counter_ns
    n = len(inputs)
    for fn in fns.values():  # warm-up
        for i in range(500):
            fn(inputs[i % n])
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        items = list(fns.items())
        for b in range(blocks):
            k = b % len(items)
            for name, fn in items[k:] + items[:k]:
                out = np.empty(per_block, dtype=np.int64)
                for i in range(per_block):
                    x = inputs[(b * per_block + i) % n]
                    t0 = clock()
                    fn(x)
                    out[i] = clock() - t0
                times[name].append(out)
            if gc_was_enabled:
                gc.collect()  # between blocks, never inside a timed call
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: np.concatenate(parts) for name, parts in times.items()}


def latency_table(times: dict[str, np.ndarray], first_column: str, ratio_header: str) -> str:
    """Markdown table of p50 / p99 / p99.9 in µs and p50 relative to the first row."""
    rows = {name: np.percentile(t, [50, 99, 99.9]) / 1000.0 for name, t in times.items()}
    ours = next(iter(rows.values()))[0]
    lines = [
        f"| {first_column} | p50 µs | p99 µs | p99.9 µs | {ratio_header} |",
        "|---|---|---|---|---|",
    ]
    for name, (p50, p99, p999) in rows.items():
        lines.append(f"| {name} | {p50:.1f} | {p99:.1f} | {p999:.1f} | {p50 / ours:.2f}× |")
    return "\n".join(lines)
