"""rl-commons inside LiteLLM: a learned routing plugin and the callback that feeds it.

    from producers.integrations.litellm import BanditRoutingStrategy, OutcomeLogger

    strategy = BanditRoutingStrategy(Settings()).attach(router)   # one policy per model group
    litellm.callbacks.append(OutcomeLogger(strategy))             # cost ($), latency (ms), errors

Needs the optional extra ``rl-commons[litellm]``. Set ``LITELLM_LOCAL_MODEL_COST_MAP=True``
where the network is closed (LiteLLM otherwise fetches its price list when imported).
docs/integrations/litellm.md has the proxy server's ``config.yaml`` and the details.
"""

from .._feedback import report_feedback
from ._features import OPENAI_FEATURE_NAMES, openai_features
from ._ledger import DECISION_HEADER, DECISION_ID
from ._logger import OutcomeLogger
from ._mock import mock_deployment
from ._strategy import BanditRoutingStrategy, policy_name

__all__ = [
    "BanditRoutingStrategy",
    "DECISION_HEADER",
    "DECISION_ID",
    "OPENAI_FEATURE_NAMES",
    "OutcomeLogger",
    "mock_deployment",
    "openai_features",
    "policy_name",
    "report_feedback",
]
