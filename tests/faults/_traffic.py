"""Traffic for the fault suite: decision/outcome pairs, a raw producer, topic counters, latency.

Everything is seeded, so a test knows exactly which decisions it sent and to
which arm, and can compare that with the parameters the loop wrote to Redis.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from producers import DecisionEvent, OutcomeEvent, Topics


@dataclass(frozen=True)
class Pair:
    decision_id: str
    arm: str
    decision: bytes
    outcome: bytes


def make_pairs(
    n: int, *, policy: str, arms: list[str], n_features: int, seed: int, start: int = 0
) -> list[Pair]:
    """``n`` decisions with one final outcome each; arm drawn uniformly, features in [0, 1)."""
    rng = np.random.default_rng(seed)
    choice = rng.integers(0, len(arms), size=n)
    feats = rng.random((n, n_features))
    quality = rng.random(n)
    now = time.time()
    pairs = []
    for i in range(n):
        did = f"s{seed}-{start + i}"
        arm = arms[int(choice[i])]
        dec = DecisionEvent(
            decision_id=did,
            policy=policy,
            policy_version=0,
            timestamp=now,
            arms=tuple(arms),
            arm=arm,
            propensity=1.0 / len(arms),
            features=tuple(float(v) for v in feats[i]),
        )
        out = OutcomeEvent(
            decision_id=did,
            policy=policy,
            timestamp=now,
            arm=arm,
            quality=float(quality[i]),
            cost=0.5,
            latency=0.5,
            final=True,
        )
        pairs.append(Pair(did, arm, dec.to_bytes(), out.to_bytes()))
    return pairs


def expected_counts(pairs: Iterable[Pair]) -> dict[str, int]:
    """Distinct decisions per arm: what every arm's ``n`` must equal once all are rewarded."""
    seen: dict[str, str] = {}
    for p in pairs:
        seen[p.decision_id] = p.arm
    return dict(Counter(seen.values()))


def raw_producer(bootstrap: str, **extra):
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "enable.idempotence": True,
            **extra,
        }
    )


def produce_pairs(producer, topics: Topics, pairs: Iterable[Pair]) -> int:
    """Decision then outcome for each pair, keyed by decision_id; returns messages produced."""
    sent = 0
    for p in pairs:
        for topic, value in ((topics.decisions, p.decision), (topics.outcomes, p.outcome)):
            while True:
                try:
                    producer.produce(topic, key=p.decision_id.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
        producer.poll(0)
    return sent


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float) -> list:
    """Read ``topic`` from the beginning until ``expect`` messages or ``timeout`` seconds."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1):
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_progress(
    value: Callable[[], float],
    target: float,
    what: str,
    *,
    activity: Callable[[], object] | None = None,
    stall: float = 60.0,
) -> float:
    """Poll ``value`` until it reaches ``target``; fail only if nothing moves for ``stall`` s.

    A loaded machine makes the loop slower, not wrong: the deadline moves with progress.
    ``activity`` (e.g. a worker's input counter) also counts as progress.
    """

    def probe() -> tuple[float, object]:
        return value(), (activity() if activity is not None else None)

    last = probe()
    last_change = time.monotonic()
    while last[0] < target:
        time.sleep(0.1)
        now = probe()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise AssertionError(f"{what}: stuck at {last[0]} of {target} for {stall:.0f}s")
    return last[0]


def worker_counter(worker, prefix: str) -> float:
    """Sum of a worker's Prometheus samples whose line starts with ``prefix``; -1 if unreachable."""
    try:
        text = worker.metrics()
    except Exception:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def worker_activity(worker) -> float:
    """Events the worker has read so far (its input counter), or -1 when unreachable."""
    return worker_counter(worker, "rlc_events_in_total")
