"""Integrations of the proxy SDK with LLM gateways.

``producers.integrations.litellm`` plugs a learned policy into ``litellm.Router`` and the
LiteLLM proxy server (optional extra ``rl-commons[litellm]``); ``report_feedback`` sends a
late quality score for a decision through a selector (or a strategy) at hand. Importing this
package imports no gateway.
"""

from ._feedback import FEEDBACK_FIELDS, feedback_event, report_feedback

__all__ = ["FEEDBACK_FIELDS", "feedback_event", "report_feedback"]
