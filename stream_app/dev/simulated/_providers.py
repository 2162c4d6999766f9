"""The simulated providers: how each behaves (``ProviderProfile``, ``DEFAULT_PROFILES``)
and the seeded world that answers calls (``SimulatedProviders``)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from policy_store import RewardSpec

from ._requests import SimRequest, as_generator, request_shape


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


#: A world where the static rule's choice, gpt-4, is the best provider at every task type and
#: the most expensive: the cheaper models match it on chat and classification (claude-3 also
#: nearly on summaries) and fall behind on code. Routing everything to gpt-4 keeps the best
#: quality at the highest price; a quality floor can cut most of the cost at no visible loss.
PREMIUM_PROFILES: Mapping[str, ProviderProfile] = {
    "gpt-4": replace(
        DEFAULT_PROFILES["gpt-4"],
        quality={"code": 0.93, "chat": 0.90, "summarize": 0.92, "classify": 0.92},
    ),
    "claude-3": replace(
        DEFAULT_PROFILES["claude-3"],
        quality={"code": 0.78, "chat": 0.90, "summarize": 0.91, "classify": 0.91},
    ),
    "llama": replace(
        DEFAULT_PROFILES["llama"],
        quality={"code": 0.50, "chat": 0.82, "summarize": 0.68, "classify": 0.92},
    ),
}

#: The simulated worlds by name (``rl-commons demo`` picks ``premium`` for a constrained objective).
WORLDS: Mapping[str, Mapping[str, ProviderProfile]] = {
    "default": DEFAULT_PROFILES,
    "premium": PREMIUM_PROFILES,
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
        self._rng = as_generator(seed)
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
        task, prompt_tokens, output_tokens = request_shape(request)
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
        task, prompt_tokens, output_tokens = request_shape(request)
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
