"""``mock_deployment``: a model-list entry that answers without a network, for tests."""

from __future__ import annotations

from typing import Any


def mock_deployment(
    group: str, ident: str, *, reply: str | None = None, cost_per_token: float = 1e-6
) -> dict[str, Any]:
    """A ``litellm.Router`` model-list entry of ``group`` with id ``ident`` that answers
    ``reply`` (default ``"answer from <ident>"``) through LiteLLM's ``mock_response``, priced
    ``cost_per_token`` dollars per input and output token: routing, callbacks and costs run
    as for a real deployment, with no network.

    >>> mock_deployment("chat", "cheap")["litellm_params"]["mock_response"]
    'answer from cheap'
    """
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{ident}",
            "api_key": "sk-unused",
            "mock_response": reply if reply is not None else f"answer from {ident}",
            "input_cost_per_token": cost_per_token,
            "output_cost_per_token": cost_per_token,
        },
        "model_info": {"id": ident},
    }
