"""The feedback API over HTTP (no broker: a producer pointed where nothing listens queues
until its bound, then the endpoint answers 503) and ``report_feedback`` in-process."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from policy_store import RewardSpec, Settings
from producers import EventProducer, ProviderSelector, Topics, parse_event
from producers.integrations import feedback_event, report_feedback
from stream_app.ops.feedback import feedback_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Captured(EventProducer):
    """An EventProducer whose queue holds ``room`` events (then drops, as on a full queue)."""

    def __init__(self, room: int) -> None:
        super().__init__(Settings(kafka_bootstrap="127.0.0.1:1"))
        self.room = room
        self.sent: list[tuple[str, str, bytes]] = []

    def send(self, topic: str, key: bytes | str, value: bytes) -> bool:
        if len(self.sent) >= self.room:
            self.dropped += 1
            return False
        self.sent.append((topic, key, value))
        self.enqueued += 1
        return True


@pytest.fixture
async def client():
    producer = Captured(room=2)
    app = feedback_app(producer, Topics(prefix="fb."), TOKEN)
    async with TestClient(TestServer(app)) as c:
        c.producer = producer
        yield c


async def test_accepted_feedback_is_an_outcome_part_on_the_outcomes_topic(client):
    r = await client.post("/v1/feedback", json={"decision_id": "d-1", "quality": 0.8}, headers=AUTH)
    assert r.status == 202
    assert await r.json() == {"decision_id": "d-1", "accepted": True}
    topic, key, value = client.producer.sent[0]
    event = parse_event(value)
    assert (topic, key) == ("fb.outcomes", "d-1")
    assert event.type == "outcome" and event.quality == 0.8 and event.final is True


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"decision_id": "d-1", "quality": 1.5}, "quality"),
        ({"decision_id": "d-1", "quality": 0.5, "rating": 5}, "unknown field"),
        ({"quality": 0.5}, "decision_id is missing"),
        ({"decision_id": "bad id!", "quality": 0.5}, "decision_id"),
        ({"decision_id": "d-1"}, "nothing to report"),
        ({"decision_id": "d-1", "cost": -1}, "cost"),
        ([1, 2], "JSON object"),
    ],
)
async def test_bad_bodies_get_400_with_the_reason(client, body, reason):
    r = await client.post("/v1/feedback", json=body, headers=AUTH)
    assert r.status == 400
    assert reason in (await r.json())["error"]
    assert client.producer.sent == []


async def test_not_json_and_too_large(client):
    r = await client.post("/v1/feedback", data=b"{not json", headers=AUTH)
    assert r.status == 400 and "JSON" in (await r.json())["error"]
    big = json.dumps({"decision_id": "d", "error": "x" * 70_000})
    r = await client.post("/v1/feedback", data=big, headers=AUTH)
    assert r.status == 413


async def test_token_is_required(client):
    body = {"decision_id": "d-1", "quality": 0.5}
    r = await client.post("/v1/feedback", json=body)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert client.producer.sent == []


async def test_without_a_configured_token_every_post_is_refused():
    app = feedback_app(Captured(room=5), Topics(), None)
    async with TestClient(TestServer(app)) as c:
        r = await c.post("/v1/feedback", json={"decision_id": "d", "quality": 0.5}, headers=AUTH)
        assert r.status == 403 and "RL_COMMONS_FEEDBACK_TOKEN" in (await r.json())["error"]


async def test_full_queue_answers_503_and_health_counts(client):
    for i in range(2):
        body = {"decision_id": f"d{i}", "quality": 0.5}
        r = await client.post("/v1/feedback", json=body, headers=AUTH)
        assert r.status == 202
    r = await client.post("/v1/feedback", json={"decision_id": "d9", "quality": 0.5}, headers=AUTH)
    assert r.status == 503 and r.headers["Retry-After"]
    health = await (await client.get("/v1/feedback/health")).json()
    assert (health["accepted"], health["unavailable"]) == (2, 1)
    assert health["producer"]["dropped"] == 1


async def test_a_real_producer_with_no_broker_fills_its_bound_then_503():
    producer = EventProducer(
        Settings(kafka_bootstrap="127.0.0.1:1"), config={"queue.buffering.max.messages": 3}
    )
    app = feedback_app(producer, Topics(), TOKEN)
    async with TestClient(TestServer(app)) as c:
        codes = []
        for i in range(5):
            body = {"decision_id": f"d{i}", "quality": 0.5}
            codes.append((await c.post("/v1/feedback", json=body, headers=AUTH)).status)
    assert codes == [202, 202, 202, 503, 503]


def test_feedback_event_defaults_final_and_keeps_other_components():
    e = feedback_event({"decision_id": "d", "cost": 0.002, "final": False}, 5.0)
    assert (e.cost, e.final, e.timestamp) == (0.002, False, 5.0)


def test_report_feedback_through_a_selector_completes_the_outcome():
    spec = RewardSpec(required=("quality", "cost", "latency"))
    selector = ProviderSelector(providers=["a", "b"], reward_spec=spec, seed=0)
    d = selector.select({"prompt": "hi"})
    assert selector.report_outcome(d.decision_id, cost=0.1, latency=0.2)
    assert selector.metrics()["pending"] == 1
    assert report_feedback(selector, d.decision_id, quality=0.9) is True
    assert selector.metrics()["pending"] == 0
    assert report_feedback(selector, d.decision_id, quality=0.9) is False  # already learnt
    with pytest.raises(ValueError, match="quality"):
        report_feedback(selector, d.decision_id, quality=2.0)
    with pytest.raises(TypeError, match="model_group"):
        report_feedback(selector, d.decision_id, quality=0.5, model_group="x")
