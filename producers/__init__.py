"""producers: the proxy side — events (the wire contract), the Kafka producer and the selectors."""

from ._topics import TOPIC_KINDS, Topics, create_topics

__all__ = ["TOPIC_KINDS", "Topics", "create_topics"]
