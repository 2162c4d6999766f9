"""producers: the proxy side — events (the wire contract), the Kafka producer and the selectors."""

from ._events import (
    DecisionEvent,
    DLQRecord,
    EventError,
    OutcomeEvent,
    RewardComponents,
    RewardEvent,
    json_schemas,
    parse_event,
)
from ._topics import TOPIC_KINDS, Topics, create_topics

__all__ = [
    "DLQRecord",
    "DecisionEvent",
    "EventError",
    "OutcomeEvent",
    "RewardComponents",
    "RewardEvent",
    "TOPIC_KINDS",
    "Topics",
    "create_topics",
    "json_schemas",
    "parse_event",
]
