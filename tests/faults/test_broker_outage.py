"""The broker stopped for 10 s: the proxy keeps serving and loses nothing it had room for.

Two proxies select and report outcomes through the outage: one with the default
buffer (100,000 events), one with a buffer of 500. The first drops nothing and
every event it produced during the outage is on the topics after the restart;
the second drops exactly the events beyond its bound, and only those.

The broker is frozen (SIGSTOP) for the outage and thawed after (SIGCONT): it
answers nothing for 10 s and keeps its state. A kill and restart cannot be used
with the embedded broker: Tansu is memory-only and forgets topics and producer
ids, and the idempotent producer then loops on UNKNOWN_PRODUCER_ID (see
docs/reliability.md); a real Kafka cluster keeps both.
"""

from __future__ import annotations

import time

import pytest
from _traffic import read_topic

from policy_store import Settings
from producers import DEFAULT_FEATURE_NAMES, EventProducer, ProviderSelector

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 10.0
SMALL_BOUND = 500
ARMS = ["gpt-4", "claude-3", "llama"]


def _serve(selector: ProviderSelector, i: int) -> str:
    """One request: select, then report the whole outcome (two events)."""
    request = {"prompt": "p" * (i % 2000), "priority": ("speed", "quality")[i % 2]}
    decision = selector.select(request)
    assert decision.logged and decision.provider in ARMS
    selector.report_outcome(decision.decision_id, quality=0.7, cost=0.2, latency=0.3, final=True)
    return decision.decision_id


def test_proxy_serves_through_a_broker_outage_and_delivers_after(fault_services):
    svc = fault_services
    svc.create_policy("p", ARMS, len(DEFAULT_FEATURE_NAMES), rollout_fraction=1.0)
    base = dict(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=svc.key_prefix,
        topic_prefix=svc.topics.prefix,
    )
    big = EventProducer(Settings(**base))
    small = EventProducer(Settings(**base, producer_queue_max=SMALL_BOUND))
    proxy = ProviderSelector.connect("p", Settings(**base), seed=1, producer=big)
    bounded = ProviderSelector.connect("p", Settings(**base), seed=2, producer=small)
    try:
        for i in range(100):  # before: everything delivered
            _serve(proxy, i)
            _serve(bounded, i)
        assert big.flush(30) == 0 and small.flush(30) == 0
        before = {"big": big.metrics(), "small": small.metrics()}
        assert before["big"]["dropped"] == 0 and before["small"]["dropped"] == 0

        svc.freeze_broker()
        t0 = time.monotonic()
        outage_ids: list[str] = []
        small_sent = []  # (enqueued, dropped) after each event pair of the bounded proxy
        i = 0
        while time.monotonic() - t0 < OUTAGE_SECONDS:
            outage_ids.append(_serve(proxy, i))
            _serve(bounded, i)
            m = small.metrics()
            small_sent.append((m["enqueued"], m["dropped"]))
            i += 1
            if i % 50 == 0:
                time.sleep(0.05)  # ~1,000 requests/s, not a busy loop
        during = {"big": big.metrics(), "small": small.metrics()}
        svc.thaw_broker()
        left_big, left_small = big.flush(90), small.flush(90)
        after = {"big": big.metrics(), "small": small.metrics()}
    finally:
        proxy.close()
        bounded.close()
    n = len(outage_ids)
    print(
        f"broker down {OUTAGE_SECONDS:.0f}s: {n} requests served by each proxy; "
        f"default buffer: {during['big']['queue_length']} events queued, "
        f"{after['big']['delivered'] - before['big']['delivered']} delivered after, "
        f"{after['big']['dropped']} dropped; bound {SMALL_BOUND}: "
        f"{after['small']['dropped']} dropped, "
        f"{after['small']['delivered'] - before['small']['delivered']} delivered after"
    )

    # The proxy kept serving (every request above returned a logged decision).
    assert n > 2 * SMALL_BOUND
    # Default buffer: nothing dropped, everything produced during the outage delivered after.
    assert after["big"]["dropped"] == 0 and after["big"]["delivery_failed"] == 0
    assert left_big == 0
    assert after["big"]["delivered"] - before["big"]["delivered"] == 2 * n
    # Counted on the topics: every delivered event of both proxies is there, once.
    total = after["big"]["delivered"] + after["small"]["delivered"]
    decisions = read_topic(svc.bootstrap, svc.topics.decisions, expect=total // 2, timeout=60)
    outcomes = read_topic(svc.bootstrap, svc.topics.outcomes, expect=total // 2, timeout=60)
    assert len(decisions) + len(outcomes) == total
    for msgs in (decisions, outcomes):
        keys = [m.key().decode() for m in msgs]
        assert len(set(keys)) == len(keys) == total // 2
        assert set(outage_ids) <= set(keys)

    # Bounded buffer: drops start exactly when the bound is reached, and are all counted.
    enq0, drop0 = before["small"]["enqueued"], before["small"]["dropped"]
    first_drop = next(k for k, (_, d) in enumerate(small_sent) if d > drop0)
    assert small_sent[first_drop - 1][0] - enq0 == SMALL_BOUND
    assert during["small"]["enqueued"] - enq0 == SMALL_BOUND
    assert during["small"]["dropped"] == 2 * n - SMALL_BOUND
    assert left_small == 0 and after["small"]["delivery_failed"] == 0
    assert after["small"]["delivered"] - before["small"]["delivered"] == SMALL_BOUND
