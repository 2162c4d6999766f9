"""Features of a request: the default vector and checks on user feature functions.

The default vector (``DEFAULT_FEATURE_NAMES``) follows the original integration:

    0 bias              1.0
    1 prompt_k          len(prompt) / 1000, capped at 10
    2 priority_speed    1.0 if request["priority"] == "speed"
    3 priority_quality  1.0 if request["priority"] == "quality"
    4 priority_cost     1.0 if request["priority"] == "cost"
    5 has_code          1.0 if the prompt contains a code fence or looks like code
    6 max_tokens_k      request.get("max_tokens", 0) / 1000, capped at 10

A user function ``feature_fn(request) -> sequence of numbers`` replaces it; its
output must have exactly the policy's ``n_features`` numbers, all finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policy_store import RLCommonsError

FeatureFn = Callable[[Mapping[str, Any]], Sequence[float]]

DEFAULT_FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "prompt_k",
    "priority_speed",
    "priority_quality",
    "priority_cost",
    "has_code",
    "max_tokens_k",
)
N_DEFAULT_FEATURES = len(DEFAULT_FEATURE_NAMES)
_CODE_MARKERS = ("```", "def ", "class ", "function ", "#include", "import ", "SELECT ")


class FeatureError(RLCommonsError, ValueError):
    """A feature vector has the wrong size or a non-finite number."""


def default_features(request: Mapping[str, Any]) -> tuple[float, ...]:
    """The default feature vector of a request (see the module docstring).

    >>> default_features({"prompt": "Quick test", "priority": "speed"})
    (1.0, 0.01, 1.0, 0.0, 0.0, 0.0, 0.0)
    """
    prompt = request.get("prompt") or ""
    if not isinstance(prompt, str):
        prompt = str(prompt)
    priority = request.get("priority")
    max_tokens = request.get("max_tokens") or 0
    try:
        max_tokens_k = min(float(max_tokens) / 1000.0, 10.0)
    except (TypeError, ValueError):
        max_tokens_k = 0.0
    if not math.isfinite(max_tokens_k):
        max_tokens_k = 0.0
    has_code = 1.0 if any(m in prompt for m in _CODE_MARKERS) else 0.0
    return (
        1.0,
        min(len(prompt) / 1000.0, 10.0),
        1.0 if priority == "speed" else 0.0,
        1.0 if priority == "quality" else 0.0,
        1.0 if priority == "cost" else 0.0,
        has_code,
        max(max_tokens_k, 0.0),
    )


def check_vector(values: Sequence[float], n_features: int) -> tuple[float, ...]:
    """``values`` as a tuple of floats, refusing a wrong size or NaN/infinity."""
    try:
        x = tuple(map(float, values))
    except (TypeError, ValueError) as exc:
        raise FeatureError(
            f"the feature function must return a sequence of numbers ({exc})"
        ) from None
    if len(x) != n_features:
        raise FeatureError(
            f"the feature function returned {len(x)} numbers but the policy has "
            f"n_features={n_features}; return exactly n_features numbers or create the "
            f"policy with n_features={len(x)}"
        )
    s = sum(x)
    if s - s != 0.0:  # NaN or infinity somewhere (cheaper than a per-element check)
        raise FeatureError(f"the feature vector contains NaN or infinity: {list(x)}")
    return x
