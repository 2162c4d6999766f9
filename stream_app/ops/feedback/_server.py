"""``POST /v1/feedback``: one outcome part per request, published to Kafka.

    POST {prefix}/v1/feedback   {"decision_id": "…", "quality": 0.8, "final": true}
    GET  {prefix}/v1/feedback/health   producer counters (no token needed)

The body is checked by ``producers.integrations.feedback_event`` (the ``OutcomeEvent``
schema: ``quality`` in [0, 1], ``cost`` / ``latency`` ≥ 0 in the policy's units, ``error``,
``final`` — true unless given — and nothing else). Answers:

* 202 ``{"decision_id": …, "accepted": true}``: enqueued for Kafka (the producer delivers
  it in the background and keeps it through a broker outage while its queue has room);
* 400 with the reason (bad JSON, unknown field, value out of range), 413 over 64 KiB;
* 401 without the right ``Authorization: Bearer <token>``, 403 when no token is set;
* 503 when the event could not even be queued (Kafka unreachable and the bounded queue
  full, or the producer refused its configuration): retry later.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from producers import EventProducer, Topics
from producers.integrations import feedback_event

TOKEN_ENV = "RL_COMMONS_FEEDBACK_TOKEN"
MAX_BODY_BYTES = 64 * 1024


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class FeedbackRoutes:
    """Handlers bound to one producer, topic set and token."""

    def __init__(
        self,
        producer: EventProducer,
        topics: Topics,
        token: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self._token = token or None
        self._clock = clock
        self.accepted = 0
        self.refused = 0
        self.unavailable = 0

    def _denied(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            return _error(403, f"feedback is disabled: no token is configured; set {TOKEN_ENV}")
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
            return _error(
                401,
                f"missing or wrong token: send 'Authorization: Bearer <token>' ({TOKEN_ENV})",
                **{"WWW-Authenticate": 'Bearer realm="rl-commons"'},
            )
        return None

    async def post(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(await request.read())
            event = feedback_event(body, self._clock())
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.refused += 1
            return _error(400, 'body must be JSON, e.g. {"decision_id": "…", "quality": 0.8}')
        except ValueError as exc:
            self.refused += 1
            return _error(400, str(exc))
        if not self.producer.send(self.topics.outcomes, event.decision_id, event.to_bytes()):
            self.unavailable += 1
            return _error(
                503,
                "Kafka is unreachable and the feedback queue is full: retry later",
                **{"Retry-After": "5"},
            )
        self.accepted += 1
        return web.json_response({"decision_id": event.decision_id, "accepted": True}, status=202)

    async def health(self, request: web.Request) -> web.Response:
        data: dict[str, Any] = {
            "accepted": self.accepted,
            "refused": self.refused,
            "unavailable": self.unavailable,
            "producer": self.producer.metrics(),
        }
        return web.json_response(data)

    def add_to(self, app: web.Application, prefix: str = "") -> None:
        """Register the routes on ``app`` under ``prefix`` (``""`` or e.g. ``"/rlc"``)."""
        prefix = prefix.rstrip("/")
        app.router.add_post(prefix + "/v1/feedback", self.post)
        app.router.add_get(prefix + "/v1/feedback/health", self.health)


def mount_feedback(
    app: web.Application,
    producer: EventProducer,
    topics: Topics,
    token: str | None,
    prefix: str = "",
) -> FeedbackRoutes:
    """Add the feedback API to an existing aiohttp application."""
    routes = FeedbackRoutes(producer, topics, token)
    routes.add_to(app, prefix)
    return routes


def feedback_app(producer: EventProducer, topics: Topics, token: str | None) -> web.Application:
    """A standalone aiohttp application serving the feedback API; closing it flushes the
    producer."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    FeedbackRoutes(producer, topics, token).add_to(app)

    async def flush(_app: web.Application) -> None:
        producer.close(5.0)

    app.on_cleanup.append(flush)
    return app
