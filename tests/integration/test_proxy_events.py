"""The proxy's events on the real broker: topics, keys, partitions, and broker outages."""

from __future__ import annotations

import time

import pytest

from policy_store import Settings, make_config
from producers import DecisionEvent, EventProducer, OutcomeEvent, ProviderSelector, parse_event

pytestmark = pytest.mark.integration

ARMS = ["gpt-4", "claude-3", "llama"]


def _consume(bootstrap: str, topic: str, n: int, group: str, timeout: float = 30.0) -> list:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    # assign (no group join: Tansu answers JoinGroup slowly); every partition from the start
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg)
    finally:
        consumer.close()
    return got


def _java_partition(key: bytes, partitions: int) -> int:
    """The partition Java's DefaultPartitioner / aiokafka / Faust choose for a key (murmur2)."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    return DefaultPartitioner()(key, every, every)


def test_decisions_and_outcomes_land_keyed_on_the_java_partition(
    services, settings, topics, redis_store, unique
):
    redis_store.create(make_config(name="p1", arms=ARMS, n_features=7))
    selector = ProviderSelector.connect("p1", settings, seed=1)
    try:
        assert selector.reader.wait_for_version(0, timeout=5)
        decisions = [
            selector.select({"prompt": f"question {i}", "priority": "speed"}, request_key=f"u{i}")
            for i in range(40)
        ]
        for d in decisions:
            selector.report_outcome(d.decision_id, cost=0.2, latency=0.3, provider=d.provider)
            selector.report_outcome(d.decision_id, quality=0.8, final=True)
    finally:
        selector.close(timeout=10)
    m = selector.metrics()
    assert m["producer_enqueued"] == 120 and m["producer_delivered"] == 120
    assert m["producer_dropped"] == 0 and m["producer_delivery_failed"] == 0

    by_id = {d.decision_id: d for d in decisions}
    got = _consume(services.bootstrap, topics.decisions, 40, f"g{unique}d")
    assert len(got) == 40
    partitions_seen = set()
    for msg in got:
        event = parse_event(msg.value())
        assert isinstance(event, DecisionEvent)
        assert msg.key() == event.decision_id.encode()
        assert msg.partition() == _java_partition(msg.key(), 4)
        partitions_seen.add(msg.partition())
        d = by_id[event.decision_id]
        assert (event.arm, event.propensity, event.features) == (
            d.provider,
            d.propensity,
            d.features,
        )
        assert event.policy == "p1" and event.cohort == "rl" and event.arms == tuple(ARMS)
    assert len(partitions_seen) > 1  # keys really are spread, not all on one partition

    got = _consume(services.bootstrap, topics.outcomes, 80, f"g{unique}o")
    assert len(got) == 80
    finals = 0
    for msg in got:
        event = parse_event(msg.value())
        assert isinstance(event, OutcomeEvent)
        assert msg.key() == event.decision_id.encode()
        assert msg.partition() == _java_partition(msg.key(), 4)
        # the arm is given with the first part only; the join takes it from the decision
        assert event.arm in (None, by_id[event.decision_id].provider)
        assert (event.arm is None) == event.final
        finals += event.final
    assert finals == 40


def test_unreachable_broker_keeps_selecting_and_counts_drops(services, redis_store, key_prefix):
    from stream_app.dev.embedded import free_port

    redis_store.create(make_config(name="p2", arms=ARMS, n_features=7))
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
        redis_url=services.redis_url,
        key_prefix=key_prefix,
        producer_queue_max=20,
    )
    selector = ProviderSelector.connect("p2", settings, seed=2)
    try:
        served = [selector.select_provider({"prompt": "hi"}) for _ in range(200)]
        assert all(p in ARMS for p in served)
        m = selector.producer.metrics()
        assert m["enqueued"] == 20 and m["dropped"] == 180
        assert m["queue_length"] == 20
    finally:
        left = selector.producer.close(timeout=0.5)
        selector.close(timeout=0)
    assert left == 20
    # what close() could not send is purged and counted as failed, exactly
    m = selector.producer.metrics()
    assert (m["delivery_failed"], m["delivered"], m["queue_length"]) == (20, 0, 0)


def test_broker_stopped_mid_run(services, redis_store, key_prefix, unique):
    from producers import Topics, create_topics
    from stream_app.dev.embedded import EmbeddedBroker

    redis_store.create(make_config(name="p3", arms=ARMS, n_features=7))
    broker = EmbeddedBroker().start()
    try:
        topics = Topics(prefix=f"s{unique}.")
        create_topics(Settings(kafka_bootstrap=broker.bootstrap), topics, partitions=4)
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            redis_url=services.redis_url,
            key_prefix=key_prefix,
            topic_prefix=topics.prefix,
            producer_queue_max=30,
        )
        producer = EventProducer(settings)
        selector = ProviderSelector.connect("p3", settings, seed=3, producer=producer)
        for _ in range(10):
            selector.select({"prompt": "before"})
        assert producer.flush(10) == 0
        assert producer.metrics()["delivered"] == 10
        broker.kill()
        served = [selector.select({"prompt": "after"}).provider for _ in range(100)]
        assert all(p in ARMS for p in served)
        m = producer.metrics()
        assert m["dropped"] >= 70 and m["enqueued"] + m["dropped"] == 110
        selector.close(timeout=0.5)
    finally:
        broker.stop()


def test_original_api_in_streaming_mode_reports_the_oldest_matching_decision(
    services, settings, topics, redis_store, unique
):
    redis_store.create(make_config(name="p4", arms=ARMS, n_features=7))
    selector = ProviderSelector.connect("p4", settings, seed=4)
    request = {"prompt": "same question", "priority": "quality"}
    try:
        assert selector.reader.wait_for_version(0, timeout=5)
        served = [selector.select_provider(request) for _ in range(12)]
        provider = served[0]
        metrics = {"quality": 0.6, "cost": 0.1, "latency": 0.2}
        assert selector.update_from_response(request, provider, metrics)
        assert selector.update_from_response(request, provider, metrics)
        # nothing pending for a provider never served for these features
        assert not selector.update_from_response({"prompt": "other"}, provider, metrics)
        assert selector.metrics()["unmatched_updates"] == 1
    finally:
        selector.close(timeout=10)
    decisions = [
        parse_event(m.value())
        for m in _consume(services.bootstrap, topics.decisions, 12, f"g{unique}d")
    ]
    outcomes = [
        parse_event(m.value())
        for m in _consume(services.bootstrap, topics.outcomes, 2, f"g{unique}o")
    ]
    assert len(decisions) == 12 and len(outcomes) == 2
    in_order = sorted((d for d in decisions if d.arm == provider), key=lambda d: d.timestamp)
    assert {o.decision_id for o in outcomes} == {d.decision_id for d in in_order[:2]}
    for o in outcomes:
        assert (o.arm, o.quality, o.cost, o.latency, o.final) == (provider, 0.6, 0.1, 0.2, True)
