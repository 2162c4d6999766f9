"""Features of an OpenAI-style request (what ``litellm.Router`` routes), for the policy.

The default vector (``OPENAI_FEATURE_NAMES``, 10 numbers):

    0 bias           1.0
    1 prompt_k       characters of every message's text / 1000, capped at 10
    2 messages_10    number of messages / 10, capped at 1
    3 tools          1.0 if the request offers tools (or functions)
    4 has_code       1.0 if the last user message has a code fence or looks like code
    5 max_tokens_k   max_tokens (or max_completion_tokens) / 1000, capped at 10
    6 json_mode      1.0 if response_format asks for JSON (json_object or json_schema)
    7 system         1.0 if there is a system (or developer) message
    8 images         1.0 if a message has an image part
    9 stream         1.0 if the response is streamed

Pure functions of the request mapping; no tokeniser (counting characters costs
microseconds, tokenising would cost more than the rest of the routing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

OPENAI_FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "prompt_k",
    "messages_10",
    "tools",
    "has_code",
    "max_tokens_k",
    "json_mode",
    "system",
    "images",
    "stream",
)
N_OPENAI_FEATURES = len(OPENAI_FEATURE_NAMES)
CODE_MARKERS = ("```", "def ", "class ", "function ", "#include", "import ", "SELECT ", "=> {")


def _text(content: Any) -> tuple[str, bool]:
    """The text of one message's content and whether it has an image part."""
    if isinstance(content, str):
        return content, False
    if not isinstance(content, list):
        return "", False
    parts, image = [], False
    for part in content:
        if isinstance(part, Mapping):
            kind = part.get("type")
            if kind == "text":
                parts.append(str(part.get("text") or ""))
            elif kind in ("image_url", "input_image", "image"):
                image = True
    return "".join(parts), image


def _scaled(value: Any, scale: float, cap: float) -> float:
    try:
        x = float(value or 0.0) / scale
    except (TypeError, ValueError):
        return 0.0
    return min(max(x, 0.0), cap) if math.isfinite(x) else 0.0


def openai_features(request: Mapping[str, Any]) -> tuple[float, ...]:
    """The default feature vector of an OpenAI-style request (see the module docstring).

    >>> openai_features({"messages": [{"role": "user", "content": "Hi"}]})
    (1.0, 0.002, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    >>> openai_features({"messages": [{"role": "user", "content": "```py\\nx = 1\\n```"}],
    ...                  "max_tokens": 500, "tools": [{"type": "function"}]})[3:6]
    (1.0, 1.0, 0.5)
    """
    messages = request.get("messages")
    if not isinstance(messages, list):
        prompt = request.get("prompt") or request.get("input") or ""
        messages = [{"role": "user", "content": prompt if isinstance(prompt, str) else ""}]
    chars, system, images, last_user = 0, 0.0, 0.0, ""
    for m in messages:
        if not isinstance(m, Mapping):
            continue
        text, image = _text(m.get("content"))
        chars += len(text)
        role = m.get("role")
        if role == "user":
            last_user = text
        elif role in ("system", "developer"):
            system = 1.0
        if image:
            images = 1.0
    fmt = request.get("response_format")
    json_mode = isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema")
    max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
    return (
        1.0,
        min(chars / 1000.0, 10.0),
        min(len(messages) / 10.0, 1.0),
        1.0 if request.get("tools") or request.get("functions") else 0.0,
        1.0 if any(c in last_user for c in CODE_MARKERS) else 0.0,
        _scaled(max_tokens, 1000.0, 10.0),
        1.0 if json_mode else 0.0,
        system,
        images,
        1.0 if request.get("stream") else 0.0,
    )
