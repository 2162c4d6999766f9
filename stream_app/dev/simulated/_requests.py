"""The traffic of the demo world: task types, request shapes, ``RequestGenerator`` and the
features the demo policy sees (``request_features``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASK_TYPES: tuple[str, ...] = ("code", "chat", "summarize", "classify")
PRIORITIES: tuple[str, ...] = ("normal", "quality", "speed", "cost")

# Share of traffic and (median prompt tokens, median answer tokens) per task type.
TASK_MIX: Mapping[str, float] = {"code": 0.25, "chat": 0.35, "summarize": 0.2, "classify": 0.2}
TASK_TOKENS: Mapping[str, tuple[float, float]] = {
    "code": (350.0, 350.0),
    "chat": (120.0, 180.0),
    "summarize": (1400.0, 200.0),
    "classify": (150.0, 5.0),
}
PRIORITY_MIX: Mapping[str, float] = {"normal": 0.55, "quality": 0.2, "speed": 0.15, "cost": 0.1}

_PROMPTS: Mapping[str, str] = {
    "code": "Write a Python function that {thing}.",
    "chat": "Can you help me {thing}?",
    "summarize": "Summarize the following report about {thing}:",
    "classify": "Classify the sentiment of this review of {thing}:",
}
_THINGS = (
    "parses dates in log files",
    "plan a trip to Lisbon",
    "quarterly sales in Europe",
    "a pair of running shoes",
    "merges two sorted lists",
    "write a polite reminder email",
    "the incident on the payment service",
    "a noise-cancelling headset",
)


@dataclass(frozen=True)
class SimRequest:
    """One request as a proxy sees it."""

    request_id: str
    user_id: str
    task_type: str
    priority: str
    prompt_tokens: int
    output_tokens: int
    prompt: str

    def as_dict(self) -> dict[str, Any]:
        """The request dict handed to a selector (``prompt``, ``priority``, ``user_id`` …)."""
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "task_type": self.task_type,
            "priority": self.priority,
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.output_tokens,
        }


FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    *(f"task={t}" for t in TASK_TYPES),
    "prompt_len_k",
    "priority=quality",
    "priority=speed",
)


def request_features(request: Mapping[str, Any] | SimRequest) -> list[float]:
    """Features of a request for the demo policy (``len(FEATURE_NAMES)`` numbers):
    a bias, the task type one-hot, prompt length in thousands of tokens (capped at 4)
    and two priority flags."""
    if isinstance(request, SimRequest):
        request = request.as_dict()
    task = request.get("task_type", "chat")
    tokens = request.get("prompt_tokens")
    if tokens is None:
        tokens = len(str(request.get("prompt", ""))) / 4.0
    priority = request.get("priority", "normal")
    return [
        1.0,
        *(1.0 if task == t else 0.0 for t in TASK_TYPES),
        min(float(tokens) / 1000.0, 4.0),
        1.0 if priority == "quality" else 0.0,
        1.0 if priority == "speed" else 0.0,
    ]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """``seed`` itself when it is a Generator, else a new one seeded with it."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass
class RequestGenerator:
    """Draws requests: task type (``mix``), log-normal prompt and answer lengths around each
    type's medians, a priority and one of ``n_users`` user ids.

    >>> gen = RequestGenerator(seed=0)
    >>> again = RequestGenerator(seed=0)
    >>> [r.task_type for r in gen.take(5)] == [r.task_type for r in again.take(5)]
    True
    """

    seed: int | np.random.Generator | None = 0
    mix: Mapping[str, float] = field(default_factory=lambda: dict(TASK_MIX))
    n_users: int = 1000
    length_sigma: float = 0.5

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(TASK_TOKENS)
        if unknown:
            raise ValueError(
                f"unknown task types {sorted(unknown)} in mix; use some of {list(TASK_TYPES)}"
            )
        if self.n_users < 1:
            raise ValueError("n_users must be ≥ 1")
        self._rng = as_generator(self.seed)
        self._tasks = list(self.mix)
        p = np.array([self.mix[t] for t in self._tasks], dtype=np.float64)
        if (p < 0).any() or p.sum() <= 0:
            raise ValueError("mix weights must be ≥ 0 and not all zero")
        self._p = p / p.sum()
        self._prio = list(PRIORITY_MIX)
        self._prio_p = np.array([PRIORITY_MIX[k] for k in self._prio])
        self._count = 0

    def next(self) -> SimRequest:
        rng = self._rng
        task = self._tasks[int(rng.choice(len(self._tasks), p=self._p))]
        med_in, med_out = TASK_TOKENS[task]
        prompt_tokens = max(5, int(med_in * math.exp(self.length_sigma * rng.standard_normal())))
        output_tokens = max(1, int(med_out * math.exp(self.length_sigma * rng.standard_normal())))
        priority = self._prio[int(rng.choice(len(self._prio), p=self._prio_p))]
        user = int(rng.integers(self.n_users))
        thing = _THINGS[int(rng.integers(len(_THINGS)))]
        self._count += 1
        return SimRequest(
            request_id=f"req-{self._count}",
            user_id=f"user-{user}",
            task_type=task,
            priority=priority,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            prompt=_PROMPTS[task].format(thing=thing),
        )

    def take(self, n: int) -> list[SimRequest]:
        return [self.next() for _ in range(n)]

    def __iter__(self) -> Iterator[SimRequest]:
        while True:
            yield self.next()


def _guess_task(prompt: str) -> str:
    p = prompt.lower()
    if p.startswith("write a python") or "function" in p:
        return "code"
    if p.startswith("summarize"):
        return "summarize"
    if p.startswith("classify"):
        return "classify"
    return "chat"


def request_shape(request: SimRequest | Mapping[str, Any]) -> tuple[str, int, int]:
    """(task type, prompt tokens, answer tokens) of a request; missing fields are guessed
    from the prompt and the task type's median answer length."""
    if isinstance(request, SimRequest):
        return request.task_type, request.prompt_tokens, request.output_tokens
    prompt = str(request.get("prompt", ""))
    task = request.get("task_type") or _guess_task(prompt)
    if task not in TASK_TOKENS:
        raise ValueError(f"unknown task_type {task!r}; use one of {list(TASK_TYPES)}")
    prompt_tokens = request.get("prompt_tokens")
    if prompt_tokens is None:
        prompt_tokens = max(1, len(prompt) // 4)
    output_tokens = request.get("max_tokens") or request.get("output_tokens")
    if output_tokens is None:
        output_tokens = TASK_TOKENS[task][1]
    return str(task), int(prompt_tokens), int(output_tokens)
