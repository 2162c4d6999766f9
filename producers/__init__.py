"""producers: the proxy side — events (the wire contract), the Kafka producer and the selectors."""

from ._client import CallResult, LLMClient
from ._decision import Decision
from ._events import (
    MAX_FEATURE_ABS,
    DecisionEvent,
    DLQRecord,
    EventError,
    OutcomeEvent,
    RewardComponents,
    RewardEvent,
    json_schemas,
    parse_event,
)
from ._features import DEFAULT_FEATURE_NAMES, FeatureError, default_features
from ._kafka import EventProducer, KafkaClientError, KafkaConfigError
from ._kafka_config import kafka_config, producer_config, redact
from ._rollout import FixedBaseline, cohort_position
from ._safe import SafeProviderSelector
from ._selector import DEFAULT_PROVIDERS, ProviderSelector
from ._topics import TOPIC_KINDS, Topics, create_topics
from ._tracker import RLTracker

__all__ = [
    "DEFAULT_FEATURE_NAMES",
    "DEFAULT_PROVIDERS",
    "CallResult",
    "DLQRecord",
    "Decision",
    "DecisionEvent",
    "EventError",
    "EventProducer",
    "FeatureError",
    "FixedBaseline",
    "KafkaClientError",
    "KafkaConfigError",
    "LLMClient",
    "MAX_FEATURE_ABS",
    "OutcomeEvent",
    "ProviderSelector",
    "RLTracker",
    "RewardComponents",
    "RewardEvent",
    "SafeProviderSelector",
    "TOPIC_KINDS",
    "Topics",
    "cohort_position",
    "create_topics",
    "default_features",
    "json_schemas",
    "kafka_config",
    "parse_event",
    "producer_config",
    "redact",
]
