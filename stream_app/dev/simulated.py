"""Simulated LLM providers and request traffic — the only mocks in rl-commons.

A small, seeded world in which learning which provider to call is worth it:

* **Quality** depends on the provider *and the task type*: gpt-4 is clearly best
  at code, claude-3 at summarising long documents, and on classification and
  chat the cheap llama is about as good as the others.
* **Cost** is tokens × price: ``prompt_tokens/1000 · price_in +
  output_tokens/1000 · price_out`` dollars, at list-like prices.
* **Latency** grows with the length of the answer: ``ttft_ms + output_tokens ·
  ms_per_token`` milliseconds, with log-normal noise.
* Everything is noisy and drawn from one ``numpy.random.Generator``, so a seed
  reproduces a run exactly.

``SimulatedProviders.change`` alters a provider mid-run (it gets worse, cheaper or
slower) to show adaptation. ``SimulatedProviders.call`` is an ``async`` function
with the shape ``LLMClient`` expects of a provider call (``call_fn(provider,
prompt, **kwargs)``) and ``SimulatedProviders.clock`` a clock in simulated
seconds, so that ``LLMClient`` measures the simulated latency without waiting
for it; ``respond`` is the same call, synchronously. ``RequestGenerator`` draws
requests: task type, prompt and answer lengths, priority and a user id (for sticky
rollout cohorts).

>>> world = SimulatedProviders(seed=1)
>>> req = RequestGenerator(seed=2).next()
>>> resp = world.respond("gpt-4", req)
>>> 0.0 <= resp.quality <= 1.0 and resp.cost > 0 and resp.latency_ms > 0
True
>>> best_by_task(demo_reward_spec())["code"]
'gpt-4'
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from policy_store import RewardSpec

__all__ = [
    "DEFAULT_PROFILES",
    "PRIORITIES",
    "TASK_TYPES",
    "ProviderError",
    "ProviderProfile",
    "RequestGenerator",
    "SimRequest",
    "SimResponse",
    "SimulatedProviders",
    "best_by_task",
    "demo_reward_spec",
    "expected_reward_table",
    "request_features",
    "FEATURE_NAMES",
]

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


class ProviderError(RuntimeError):
    """A simulated provider failed (timeout, rate limit, server error)."""

    def __init__(self, provider: str, kind: str = "server_error") -> None:
        super().__init__(f"{provider}: {kind}")
        self.provider = provider
        self.kind = kind


@dataclass(frozen=True)
class ProviderProfile:
    """How one simulated provider behaves.

    ``quality`` maps task type → mean quality in [0, 1]; prices are dollars per
    1k tokens; latency is ``ttft_ms + output_tokens · ms_per_token`` times
    log-normal noise of width ``latency_noise``.
    """

    name: str
    quality: Mapping[str, float]
    price_in: float
    price_out: float
    ttft_ms: float
    ms_per_token: float
    quality_noise: float = 0.08
    latency_noise: float = 0.2
    error_rate: float = 0.0

    def mean_quality(self, task_type: str) -> float:
        try:
            return float(self.quality[task_type])
        except KeyError:
            raise ValueError(
                f"provider {self.name!r} has no quality for task type {task_type!r}; "
                f"known task types: {sorted(self.quality)}"
            ) from None

    def cost(self, prompt_tokens: float, output_tokens: float) -> float:
        """Dollars for one call."""
        return prompt_tokens / 1000.0 * self.price_in + output_tokens / 1000.0 * self.price_out

    def mean_latency_ms(self, output_tokens: float) -> float:
        return self.ttft_ms + output_tokens * self.ms_per_token

    def changed(
        self,
        *,
        quality_delta: float | Mapping[str, float] = 0.0,
        price_factor: float = 1.0,
        latency_factor: float = 1.0,
        error_rate: float | None = None,
    ) -> ProviderProfile:
        """A copy that got worse or better: quality shifted (clipped to [0, 1]), prices and
        latency scaled, optionally a new error rate."""
        if isinstance(quality_delta, Mapping):
            deltas = {t: float(quality_delta.get(t, 0.0)) for t in self.quality}
        else:
            deltas = {t: float(quality_delta) for t in self.quality}
        if price_factor <= 0 or latency_factor <= 0:
            raise ValueError("price_factor and latency_factor must be > 0")
        return replace(
            self,
            quality={t: min(max(q + deltas[t], 0.0), 1.0) for t, q in self.quality.items()},
            price_in=self.price_in * price_factor,
            price_out=self.price_out * price_factor,
            ttft_ms=self.ttft_ms * latency_factor,
            ms_per_token=self.ms_per_token * latency_factor,
            error_rate=self.error_rate if error_rate is None else float(error_rate),
        )


DEFAULT_PROFILES: Mapping[str, ProviderProfile] = {
    "gpt-4": ProviderProfile(
        name="gpt-4",
        quality={"code": 0.93, "chat": 0.88, "summarize": 0.86, "classify": 0.89},
        price_in=0.03,
        price_out=0.06,
        ttft_ms=700.0,
        ms_per_token=30.0,
    ),
    "claude-3": ProviderProfile(
        name="claude-3",
        quality={"code": 0.72, "chat": 0.88, "summarize": 0.93, "classify": 0.85},
        price_in=0.003,
        price_out=0.015,
        ttft_ms=500.0,
        ms_per_token=18.0,
    ),
    "llama": ProviderProfile(
        name="llama",
        quality={"code": 0.50, "chat": 0.82, "summarize": 0.66, "classify": 0.90},
        price_in=0.0002,
        price_out=0.0002,
        ttft_ms=250.0,
        ms_per_token=8.0,
    ),
}


def demo_reward_spec() -> RewardSpec:
    """The demo policy's reward: quality first, then dollars (cap $0.10), then latency (30 s)."""
    return RewardSpec(
        quality_weight=0.6,
        cost_weight=0.25,
        latency_weight=0.15,
        cost_cap=0.10,
        latency_cap_ms=30_000.0,
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


@dataclass(frozen=True)
class SimResponse:
    """What a simulated provider returned, with the measured quality, cost and latency."""

    provider: str
    text: str
    quality: float
    cost: float
    latency_ms: float
    prompt_tokens: int
    output_tokens: int
    task_type: str


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


def _as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
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
        self._rng = _as_generator(self.seed)
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


class SimulatedProviders:
    """The simulated providers behind a proxy.

    ``respond(provider, request)`` draws one response; ``await call(provider, prompt,
    **request_fields)`` does the same as a coroutine (optionally sleeping
    ``latency · time_scale`` seconds to look like a network call).
    ``change(provider, ...)`` alters a provider from now on and records when.
    """

    def __init__(
        self,
        profiles: Mapping[str, ProviderProfile] | None = None,
        *,
        seed: int | np.random.Generator | None = 0,
        time_scale: float = 0.0,
    ) -> None:
        self.profiles: dict[str, ProviderProfile] = dict(profiles or DEFAULT_PROFILES)
        if not self.profiles:
            raise ValueError("give at least one provider profile")
        self.time_scale = float(time_scale)
        self._rng = _as_generator(seed)
        self.calls = 0
        self.changes: list[tuple[int, str, ProviderProfile]] = []
        self.virtual_seconds = 0.0

    @property
    def names(self) -> list[str]:
        return list(self.profiles)

    def profile(self, provider: str) -> ProviderProfile:
        try:
            return self.profiles[provider]
        except KeyError:
            raise ValueError(
                f"unknown simulated provider {provider!r}; known: {self.names}"
            ) from None

    def change(self, provider: str, **changes: Any) -> ProviderProfile:
        """Make ``provider`` worse or better from the next call on (arguments as in
        ``ProviderProfile.changed``). Returns the new profile; ``self.changes`` records
        (call number, provider, new profile)."""
        new = self.profile(provider).changed(**changes)
        self.profiles[provider] = new
        self.changes.append((self.calls, provider, new))
        return new

    def respond(self, provider: str, request: SimRequest | Mapping[str, Any]) -> SimResponse:
        """One simulated call. Raises ``ProviderError`` with the profile's error rate."""
        prof = self.profile(provider)
        task, prompt_tokens, output_tokens = _request_shape(request)
        rng = self._rng
        self.calls += 1
        if prof.error_rate > 0 and rng.random() < prof.error_rate:
            raise ProviderError(provider, "server_error")
        q = prof.mean_quality(task) + prof.quality_noise * rng.standard_normal()
        quality = min(max(q, 0.0), 1.0)
        # real answers vary in length around what was asked for
        out = max(1, int(round(output_tokens * math.exp(0.15 * rng.standard_normal()))))
        latency = prof.mean_latency_ms(out) * math.exp(
            prof.latency_noise * rng.standard_normal() - prof.latency_noise**2 / 2
        )
        return SimResponse(
            provider=provider,
            text=f"[{provider}] {task} answer ({out} tokens)",
            quality=float(quality),
            cost=float(prof.cost(prompt_tokens, out)),
            latency_ms=float(latency),
            prompt_tokens=int(prompt_tokens),
            output_tokens=out,
            task_type=task,
        )

    async def call(self, provider: str, prompt: str = "", **request: Any) -> SimResponse:
        """Async provider call for ``LLMClient``: the request fields (``task_type``,
        ``prompt_tokens``, ``max_tokens``) come as keyword arguments; missing ones are
        guessed from the prompt."""
        fields = {"prompt": prompt, **request}
        resp = self.respond(provider, fields)
        self.virtual_seconds += resp.latency_ms / 1000.0
        if self.time_scale > 0:
            await asyncio.sleep(resp.latency_ms / 1000.0 * self.time_scale)
        return resp

    def clock(self) -> float:
        """Simulated seconds: advanced by each ``call``'s latency. Give it to ``LLMClient``
        (``clock=world.clock``) so that the latency it measures is the simulated one."""
        return self.virtual_seconds

    def expected(
        self, provider: str, request: SimRequest | Mapping[str, Any]
    ) -> tuple[float, float, float]:
        """Noise-free (quality, dollars, milliseconds) of ``provider`` on ``request``."""
        prof = self.profile(provider)
        task, prompt_tokens, output_tokens = _request_shape(request)
        return (
            prof.mean_quality(task),
            prof.cost(prompt_tokens, output_tokens),
            prof.mean_latency_ms(output_tokens),
        )

    def expected_reward(
        self, provider: str, request: SimRequest | Mapping[str, Any], spec: RewardSpec
    ) -> float:
        q, c, lat = self.expected(provider, request)
        return spec.reward(quality=q, cost=c, latency=lat)

    def best(self, request: SimRequest | Mapping[str, Any], spec: RewardSpec) -> str:
        """The provider with the highest expected reward for ``request`` (the oracle)."""
        return max(self.names, key=lambda p: self.expected_reward(p, request, spec))


def _guess_task(prompt: str) -> str:
    p = prompt.lower()
    if p.startswith("write a python") or "function" in p:
        return "code"
    if p.startswith("summarize"):
        return "summarize"
    if p.startswith("classify"):
        return "classify"
    return "chat"


def _request_shape(request: SimRequest | Mapping[str, Any]) -> tuple[str, int, int]:
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


def expected_reward_table(
    spec: RewardSpec,
    profiles: Mapping[str, ProviderProfile] | None = None,
) -> dict[str, dict[str, float]]:
    """Expected reward of each provider for a typical (median-length) request of each task type:
    ``{task_type: {provider: reward}}``."""
    profiles = profiles or DEFAULT_PROFILES
    table: dict[str, dict[str, float]] = {}
    for task, (tin, tout) in TASK_TOKENS.items():
        table[task] = {
            name: spec.reward(
                quality=prof.mean_quality(task),
                cost=prof.cost(tin, tout),
                latency=prof.mean_latency_ms(tout),
            )
            for name, prof in profiles.items()
        }
    return table


def best_by_task(
    spec: RewardSpec, profiles: Mapping[str, ProviderProfile] | None = None
) -> dict[str, str]:
    """The best provider for a typical request of each task type."""
    return {
        task: max(row, key=row.__getitem__)
        for task, row in expected_reward_table(spec, profiles).items()
    }
