"""``EventProducer``: non-blocking, never-raising publication of events over confluent-kafka.

* The librdkafka client is built lazily (no network in ``__init__``) from
  ``policy_store.Settings`` (bootstrap, security protocol, SASL, SSL files).
  A configuration librdkafka refuses raises ``KafkaConfigError`` from ``start()``;
  ``kafka_error`` is the one place confluent-kafka errors become rl-commons errors.
* Idempotent, ``partitioner=murmur2_random`` so a key lands on the partition a
  Java / aiokafka / Faust client would choose, no compression (small events;
  compressing would cost CPU on the request path).
* ``send`` only enqueues: a full local queue (``producer_queue_max`` messages)
  or any client error is counted as a drop, never raised.
* Delivery reports. librdkafka reports only failures to our callbacks (counted),
  but confluent-kafka still takes the GIL once per *delivered* message when its
  report is served, and a message counts against the queue bound until then.
  Served by a background thread blocked in ``poll`` while requests run, every one
  of those GIL hand-offs would stall a request thread (hundreds per second under
  load, the proxy's p99). So ``send`` serves them itself, ``poll(0)`` after every
  ``SERVE_EVERY`` events (a few µs each time), and the background thread only
  wakes every ``poll_interval`` seconds to serve them when traffic stops (it then
  finds the GIL free). ``poll(0)`` releases the GIL for the call, and again around
  each report it serves: when another Python thread is busy, that ``send`` may wait
  a switch interval (5 ms) or more to get it back. Measured with one busy thread,
  at most 0.6 % of these polls stall, i.e. 0.04 % of sends: fewer than the
  interpreter's own time slicing stalls anyway (``bench_proxy``'s second table, and
  docs/proxy.md for the options tried: larger, rarer gulps and serving from the
  background thread only did no better).
* ``message.timeout.ms`` is 5 minutes: a broker outage shorter than that loses
  nothing while the queue has room.
* Counters: ``metrics()`` (a dict) and a prometheus collector (``register``);
  ``close()`` logs the events it had to give up (undelivered at shutdown) at WARNING.
  Secrets are never logged: ``describe()`` shows the config with them masked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from policy_store import RLCommonsError, Settings

from ._kafka_config import producer_config, redact

log = logging.getLogger(__name__)


class KafkaClientError(RLCommonsError, RuntimeError):
    """A Kafka client call failed; the confluent-kafka error is chained (``__cause__``)."""


class KafkaConfigError(KafkaClientError, ValueError):
    """librdkafka refused the client configuration; the message names the setting."""


def kafka_error(exc: BaseException, doing: str, hint: str = "") -> KafkaClientError:
    """The rl-commons error for a confluent-kafka failure while ``doing`` something.

    The one place Kafka errors are translated: a refused configuration (``ValueError``,
    ``TypeError`` or librdkafka's invalid-argument code) becomes ``KafkaConfigError``,
    anything else ``KafkaClientError``; ``hint`` (what to check) follows the cause.
    Raise it ``from exc``.

    >>> kafka_error(ValueError('No such configuration property: "bogus"'), "building the producer")
    KafkaConfigError('building the producer: No such configuration property: "bogus"')
    """
    config = isinstance(exc, ValueError | TypeError)
    if not config and exc.args:
        code = getattr(exc.args[0], "code", None)
        config = callable(code) and code() in _config_codes()
    cls = KafkaConfigError if config else KafkaClientError
    return cls(f"{doing}: {exc}" + (f"; {hint}" if hint else ""))


def _config_codes() -> tuple[int, ...]:
    from confluent_kafka import KafkaError

    return (KafkaError._INVALID_ARG,)


class EventProducer:
    """Publishes event bytes keyed by decision_id; never blocks, never raises.

    >>> p = EventProducer(Settings(kafka_bootstrap="127.0.0.1:1"))
    >>> p.metrics()["enqueued"]
    0
    >>> p.close(0)
    0
    """

    COUNTERS = ("enqueued", "delivered", "dropped", "delivery_failed", "errors")
    #: ``send`` serves delivery reports after this many events (a power of two)
    SERVE_EVERY = 16

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        settings = settings or Settings()
        self._config = producer_config(settings, **dict(config or {}))
        self._poll_interval = poll_interval
        self._producer: Any = None
        self._left_at_close = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_error: str | None = None
        # plain ints: += on the hot path, read by metrics() and the prometheus collector
        self.enqueued = 0
        self.dropped = 0
        self.delivery_failed = 0
        self.errors = 0
        self._served = 0  # delivery-report polls made by ``send``

    # -- lifecycle ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The client configuration with secrets masked."""
        return redact(self._config)

    def start(self) -> EventProducer:
        """Build the client and start the delivery thread now (``send`` does it lazily).

        Raises ``ValueError`` naming the bad setting if librdkafka refuses the config.
        """
        self._ensure(raise_errors=True)
        return self

    def _ensure(self, raise_errors: bool = False) -> Any:
        if self._producer is not None:
            return self._producer
        with self._lock:
            if self._producer is not None or self._closed:
                return self._producer
            from confluent_kafka import KafkaException, Producer

            cfg = dict(self._config)
            cfg["on_delivery"] = self._on_delivery
            cfg["error_cb"] = self._on_error
            cfg["logger"] = logging.getLogger("rl_commons.kafka")  # not librdkafka's stderr
            try:
                producer = Producer(cfg)
            except (KafkaException, ValueError, TypeError) as exc:
                self._last_error = str(exc)
                error = kafka_error(
                    exc,
                    "Kafka producer configuration refused",
                    f"check the RL_COMMONS_KAFKA_* settings, config={self.describe()}",
                )
                if raise_errors:
                    raise error from exc
                log.error("%s", error)
                self._closed = True  # do not retry on every send
                return None
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._serve, name="rlc-event-producer", daemon=True
            )
            self._producer = producer
            self._thread.start()
            return producer

    def _serve(self) -> None:
        """Serve delivery reports while ``send`` does not (no traffic): one wake-up per interval."""
        producer = self._producer
        wait, interval = self._stop.wait, self._poll_interval
        seen = -1
        while not wait(interval):
            if self._served != seen:  # requests are flowing and serve the reports themselves
                seen = self._served
                continue
            self._poll(producer)

    def _poll(self, producer: Any) -> None:
        try:
            producer.poll(0)
        except Exception as exc:  # a callback bug must not kill delivery reporting
            self.errors += 1
            log.debug("poll failed: %s", exc)

    def close(self, timeout: float = 10.0) -> int:
        """Flush for up to ``timeout`` seconds and stop; returns messages not delivered.

        Events still undelivered are lost: their count is logged once, at WARNING."""
        self._closed = True
        producer = self._producer
        if producer is None:
            return 0
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # wakes at once: it waits on the stop event
            self._thread = None
        failed_before, reason = self.delivery_failed, self._last_error  # before our own purge
        try:
            if producer.flush(timeout):
                # what is still queued will never be sent: purge it so every such message
                # comes back through a delivery report and is counted as failed, exactly
                producer.purge()
                producer.poll(0)
        except Exception as exc:
            log.warning("flush failed: %s", exc)
            self._left_at_close = self.queue_length()
        self._producer = None  # release the client so it stops reconnecting and logging
        lost = self.delivery_failed - failed_before + self._left_at_close
        if lost:
            log.warning(
                "%d events not delivered to Kafka at %s before close() and lost (counted in "
                "delivery_failed; last error: %s); check that Kafka is reachable, or give "
                "close() a longer timeout than %s s",
                lost,
                self._config.get("bootstrap.servers"),
                reason or self._last_error,
                timeout,
            )
        return lost

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` seconds for queued events; returns how many are left."""
        producer = self._producer
        if producer is None:
            return 0
        return int(producer.flush(timeout))

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hot path ----------------------------------------------------------------------------
    def send(self, topic: str, key: bytes | str, value: bytes) -> bool:
        """Enqueue one message; False (and counted) when it had to be dropped."""
        producer = self._producer
        if producer is None:
            producer = self._ensure()
            if producer is None:  # closed, or the config was refused
                self.dropped += 1
                return False
        elif self._closed:  # after close(): nobody serves delivery reports any more
            self.dropped += 1
            return False
        try:
            producer.produce(topic, value, key)
        except BufferError:
            self.dropped += 1
            return False
        except Exception as exc:  # unknown topic, message too large, closed client…
            self.dropped += 1
            self.errors += 1
            self._last_error = str(exc)
            return False
        self.enqueued += 1
        if not self.enqueued % self.SERVE_EVERY:
            self._served += 1
            self._poll(producer)
        return True

    # -- callbacks (delivery thread) ---------------------------------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.delivery_failed += 1
            self._last_error = str(err)

    def _on_error(self, err: Any) -> None:
        self.errors += 1
        self._last_error = str(err)
        log.debug("kafka client error: %s", err)

    # -- metrics -----------------------------------------------------------------------------
    @property
    def delivered(self) -> int:
        """Events acknowledged by the broker: enqueued − failed − still queued or in flight."""
        left = self.queue_length() + self._left_at_close
        return max(0, self.enqueued - self.delivery_failed - left)

    def queue_length(self) -> int:
        """Events queued or in flight.

        ``len(producer)`` also counts protocol requests (metadata, producer id) waiting for
        the broker; it is capped by the events not yet known to have failed.
        """
        producer = self._producer
        if producer is None:
            return 0
        return max(0, min(len(producer), self.enqueued - self.delivery_failed))

    def metrics(self) -> dict[str, Any]:
        """Counters since start, the local queue length and the last error seen."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.COUNTERS}
        out["queue_length"] = self.queue_length()
        out["last_error"] = self._last_error
        return out

    def register(self, registry: Any = None, *, name: str = "default") -> Any:
        """Expose the counters as prometheus metrics (``rlc_producer_*``) on ``registry``."""
        from prometheus_client import REGISTRY

        collector = _ProducerCollector(self, name)
        (registry if registry is not None else REGISTRY).register(collector)
        return collector


class _ProducerCollector:
    """Reads the producer's counters at scrape time: no cost on the hot path."""

    def __init__(self, producer: EventProducer, name: str) -> None:
        self.producer = producer
        self.name = name

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.producer
        counters = CounterMetricFamily(
            "rlc_producer_events",
            "Events by result: enqueued, delivered, dropped, delivery_failed.",
            labels=["producer", "result"],
        )
        for result in ("enqueued", "delivered", "dropped", "delivery_failed"):
            counters.add_metric([self.name, result], getattr(p, result))
        yield counters
        errors = CounterMetricFamily(
            "rlc_producer_errors", "Kafka client errors reported.", labels=["producer"]
        )
        errors.add_metric([self.name], p.errors)
        yield errors
        queue = GaugeMetricFamily(
            "rlc_producer_queue_length", "Events waiting in the local queue.", labels=["producer"]
        )
        queue.add_metric([self.name], p.queue_length())
        yield queue
