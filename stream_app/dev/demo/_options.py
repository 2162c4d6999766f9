"""What ``rl-commons demo`` can be told, the baselines it compares with, and its policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_store import AlgorithmConfig, PolicyConfig, make_config

from ..simulated import DEFAULT_PROFILES, FEATURE_NAMES, demo_reward_spec
from ._rollout import DEFAULT_STEPS

CHANGES = {
    "llama-worse": ("llama", {"quality_delta": -0.3}, "llama's quality drops by 0.30"),
    "claude-cheaper": ("claude-3", {"price_factor": 0.2}, "claude-3 becomes 5× cheaper"),
    "none": (None, {}, "no change"),
}


@dataclass(frozen=True)
class DemoOptions:
    """Everything ``rl-commons demo`` can be told (defaults: about 2 minutes on 2 cores)."""

    requests: int = 3000
    duration: float = 75.0
    seed: int = 7
    plot: bool = True
    out: Path = Path("demo-output")
    policy: str = "provider_selection"
    baseline: str = "priority"  # "priority" rule, or the name of one provider to always call
    change: str = "llama-worse"
    change_at: float = 0.5  # fraction of the requests
    check_every: int = 250
    steps: tuple[float, ...] = DEFAULT_STEPS
    dashboard: bool = True
    external: bool = False  # use RL_COMMONS_* services instead of starting embedded ones
    start_worker: bool = True
    drain_timeout: float = 20.0
    max_lag: int = 150  # requests not yet rewarded by the stream before the proxy slows down

    def validate(self) -> None:
        if self.requests < 1:
            raise ValueError("--requests must be ≥ 1")
        if self.duration <= 0:
            raise ValueError("--duration must be > 0 seconds")
        if self.baseline != "priority" and self.baseline not in DEFAULT_PROFILES:
            raise ValueError(
                f"--baseline must be 'priority' or one of the providers {list(DEFAULT_PROFILES)}"
            )
        if self.change not in CHANGES:
            raise ValueError(f"--change must be one of {sorted(CHANGES)}")
        if not 0.0 < self.change_at < 1.0:
            raise ValueError("change_at must be a fraction in (0, 1)")
        if self.check_every < 10:
            raise ValueError("check_every must be ≥ 10 requests")


class PriorityRule:
    """The proxy's existing routing, used as the baseline: a static rule by priority.

    ``speed`` and ``cost`` requests go to the cheap, fast model; everything else to the
    strongest one — what many proxies do before they learn anything.
    """

    def __init__(self, strong: str = "gpt-4", cheap: str = "llama") -> None:
        self.strong = strong
        self.cheap = cheap

    def select_provider(self, request: dict[str, Any]) -> str:
        return self.cheap if request.get("priority") in ("speed", "cost") else self.strong

    def __repr__(self) -> str:
        return f"priority rule (speed/cost → {self.cheap}, else → {self.strong})"


class AlwaysProvider:
    """Baseline that always calls one provider."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def select_provider(self, request: dict[str, Any]) -> str:
        return self.provider

    def __repr__(self) -> str:
        return f"always {self.provider}"


def demo_policy_config(name: str, arms: list[str], rollout: float) -> PolicyConfig:
    """The demo policy: LinUCB over the simulator's features, the demo reward spec."""
    return make_config(
        name=name,
        arms=tuple(arms),
        n_features=len(FEATURE_NAMES),
        # rewards here vary by about ±0.05, so a narrower confidence bonus than the default
        algorithm=AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02),
        reward=demo_reward_spec().model_copy(update={"window_seconds": 60.0}),
        rollout_fraction=rollout,
        baseline_arm="gpt-4" if "gpt-4" in arms else arms[0],
        max_staleness_seconds=30.0,
    )
