"""What the demo world rewards: the demo policy's reward spec, and the expected reward of
each provider per task type (which provider is best for what)."""

from __future__ import annotations

from collections.abc import Mapping

from policy_store import RewardSpec

from ._providers import DEFAULT_PROFILES, ProviderProfile
from ._requests import TASK_TOKENS


def demo_reward_spec() -> RewardSpec:
    """The demo policy's reward: quality first, then dollars (cap $0.10), then latency (30 s)."""
    return RewardSpec(
        quality_weight=0.6,
        cost_weight=0.25,
        latency_weight=0.15,
        cost_cap=0.10,
        latency_cap_ms=30_000.0,
    )


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
