"""The LiteLLM proxy server's entry point: name ``handler`` in its ``config.yaml``.

    litellm_settings:
      callbacks: producers.integrations.litellm.proxy.handler

``handler`` is made when LiteLLM first asks for it (nothing runs at import): an
``OutcomeLogger`` over a ``BanditRoutingStrategy`` with ``Settings()`` (the
``RL_COMMONS_*`` environment), ``create_policies=True`` and ``PROXY_REWARD`` for the
policies it creates. On the proxy's first request it attaches the strategy to the proxy's
router; each worker process (``--num_workers``) builds its own selectors and producer on
its first request. For other options, make your own handler in a module beside
``config.yaml`` (docs/integrations/litellm.md).
"""

from __future__ import annotations

import threading
from typing import Any

from policy_store import RewardSpec, Settings

from ._logger import OutcomeLogger
from ._strategy import BanditRoutingStrategy

#: Reward of the policies the default handler creates: a call costing $0.01 or more counts
#: as the worst cost, one taking 10 s or more as the worst latency.
PROXY_REWARD = RewardSpec(cost_cap=0.01, latency_cap_ms=10_000.0)

_lock = threading.Lock()
_handler: OutcomeLogger | None = None


def make_handler(settings: Settings | None = None, **options: Any) -> OutcomeLogger:
    """An ``OutcomeLogger`` over a new ``BanditRoutingStrategy`` (``options`` go to it)."""
    options.setdefault("create_policies", True)
    options.setdefault("reward_spec", PROXY_REWARD)
    return OutcomeLogger(BanditRoutingStrategy(settings or Settings(), **options))


def __getattr__(name: str) -> Any:
    global _handler
    if name != "handler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if _handler is None:
            _handler = make_handler()
        return _handler
