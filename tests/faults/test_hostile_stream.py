"""Hostile input on the real topics: the worker keeps running, each bad message becomes one
DLQ record with the right reason and its original bytes, and the parameters stay finite.

Valid traffic is interleaved with the hostile messages, and must all be applied.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter

import pytest
from _traffic import (
    expected_counts,
    make_pairs,
    produce_pairs,
    raw_producer,
    read_topic,
    wait_for_progress,
    worker_activity,
)
from _worker_proc import WorkerProcess

from policy_store import Settings
from producers import DLQRecord
from producers._events import MAX_EVENT_BYTES

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

ARMS = ["gpt-4", "claude-3", "llama"]
D = 4
N_VALID = 300


# the worker refuses timestamps outside [now − 1 year, now + 1 hour]: hostile messages use now
NOW = time.time()


def _decision(**changes) -> dict:
    base = {
        "type": "decision",
        "decision_id": "bad-1",
        "policy": "p",
        "policy_version": 0,
        "timestamp": NOW,
        "arms": ARMS,
        "arm": "llama",
        "propensity": 0.5,
        "features": [0.1, 0.2, 0.3, 0.4],
    }
    return {**base, **changes}


def _outcome(**changes) -> dict:
    base = {"type": "outcome", "decision_id": "bad-2", "timestamp": NOW, "quality": 0.5}
    return {**base, **changes}


def _j(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def hostile_messages() -> list[tuple[str, bytes, bytes, str]]:
    """(topic kind, key, value, expected DLQ reason)."""
    out = []

    def add(kind, value, reason, key=None, did=None):
        did = did or f"h{len(out)}"
        if isinstance(value, dict):
            value = _j({**value, "decision_id": did})
        out.append((kind, (key or did).encode(), value, reason))

    add("decisions", b"{", "bad_json")
    add("decisions", b"\xff\xfe\x00garbage", "bad_json")
    add("outcomes", b"", "bad_json")
    add("decisions", b"[" * 50_000 + b"]" * 50_000, "bad_json")  # deep nesting
    add("decisions", b"null", "schema")
    add("outcomes", _j([1, 2, 3]), "schema")
    add("decisions", _decision(features=[float("nan"), 0.0, 0.0, 0.0]), "non_finite")
    add("decisions", _decision(timestamp=float("inf")), "non_finite")
    add("outcomes", _outcome(quality=float("-inf")), "non_finite")
    add("outcomes", b'{"type":"outcome","decision_id":"h9","timestamp":1e999}', "non_finite")
    add("decisions", _decision(features=[0.5] * 10_000), "schema")  # 10,000 features
    add("decisions", _decision(features="0.1,0.2"), "schema")
    add("decisions", _decision(policy_version="latest"), "schema")
    add("decisions", _decision(arm="gpt-4\u202e\u0000"), "schema")  # odd unicode
    add("decisions", _decision(extra={"__class__": "os.system"}), "schema")
    add("outcomes", _outcome(quality=1.5), "schema")
    add("decisions", _decision(features=[0.1, 0.2]), "feature_length")
    add("decisions", _decision(policy="nope"), "unknown_policy")
    add("decisions", _decision(arms=[*ARMS, "gpt-5"], arm="gpt-5"), "unknown_arm")
    add("outcomes", _outcome(policy="p", arm="gpt-5"), "unknown_arm")
    add("decisions", _decision(), "schema", key="not-the-decision-id")
    big = _j(_decision(decision_id="h-big", padding="x" * (MAX_EVENT_BYTES + 10)))
    add("decisions", big, "too_large", did="h-big")
    return out


def test_hostile_messages_go_to_the_dlq_and_the_worker_keeps_learning(fault_services, tmp_path):
    svc = fault_services
    svc.create_policy("p", ARMS, D)
    store = svc.store()
    pairs = make_pairs(N_VALID, policy="p", arms=ARMS, n_features=D, seed=11)
    hostile = hostile_messages()
    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    worker = WorkerProcess(settings, "w0", app_id=f"{svc.key_prefix}-stream", workdir=tmp_path)
    producer = raw_producer(svc.bootstrap, **{"message.max.bytes": 2_000_000})

    def total() -> float:
        return sum(s.n for s in store.read_state("p").arms.values())

    try:
        worker.start().wait_ready(120)
        step = max(1, N_VALID // len(hostile))
        for i, (kind, key, value, _) in enumerate(hostile):  # interleaved with valid pairs
            produce_pairs(producer, svc.topics, pairs[i * step : (i + 1) * step])
            producer.produce(getattr(svc.topics, kind), key=key, value=value)
        produce_pairs(producer, svc.topics, pairs[len(hostile) * step :])
        assert producer.flush(30) == 0
        wait_for_progress(
            total, N_VALID, "valid rewards applied", activity=lambda: worker_activity(worker)
        )
        dlq = read_topic(svc.bootstrap, svc.topics.dlq, expect=len(hostile), timeout=60)
        alive = worker.proc.poll() is None
        state = store.read_state("p")
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
        producer.purge()

    assert alive, "hostile input must not stop the worker"
    assert {arm: s.n for arm, s in state.arms.items()} == {
        arm: float(n) for arm, n in expected_counts(pairs).items()
    }
    for stats in state.arms.values():
        assert all(math.isfinite(v) for v in [*stats.xx.ravel(), *stats.b, stats.n])

    records = [DLQRecord.model_validate_json(m.value()) for m in dlq]  # may exceed the input limit
    assert all(isinstance(r, DLQRecord) for r in records)
    got = Counter((r.original_b64, r.reason) for r in records)
    want = Counter((base64.b64encode(v).decode(), reason) for _, _, v, reason in hostile)
    assert got == want, {r.reason: r.detail[:120] for r in records}
    assert all(r.detail for r in records)
    largest = max(len(m.value()) for m in dlq)
    assert largest <= 4 * (MAX_EVENT_BYTES + 4096) // 3 + 8192  # bounded by the input limit
    print(f"{len(records)} DLQ records, reasons {dict(Counter(r.reason for r in records))}")
