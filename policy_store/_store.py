"""The ``PolicyStore`` interface: where configs and learned state live.

Two implementations pass the same contract tests (tests/integration/test_store_contract.py,
and tests/integration/test_update_rule.py for the statistics update rule):
``InMemoryPolicyStore`` (for embedding and tests without services) and
``RedisPolicyStore`` (production; atomic Lua apply).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._config import PolicyConfig
from ._errors import ConfigError, InvalidDeltaError, UnknownArmError
from ._state import ArmStats, Observation, PolicyState, aggregate


@dataclass(frozen=True)
class ApplyResult:
    """What one ``apply`` did: the version after it, observations added and skipped.

    ``already_applied`` names the decision ids skipped because an earlier batch had
    applied them (repeats inside the batch are counted in ``duplicates`` only).
    """

    version: int
    applied: int
    duplicates: int
    already_applied: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Head:
    """The cheap part a proxy polls: version, config and when the state last changed."""

    version: int
    config: PolicyConfig
    updated_at: float | None


class VersionWatch(Protocol):
    """Wakes a reader when a policy's version moves (a hint: the reader still polls)."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s; True if a new version was announced meanwhile."""
        ...

    def close(self) -> None: ...


class PolicyStore(ABC):
    """Configs, learned state, versions and idempotent updates of policies."""

    # -- configs ------------------------------------------------------------------------------
    @abstractmethod
    def create(self, config: PolicyConfig, *, exist_ok: bool = False) -> PolicyConfig:
        """Register a policy (refuses an existing name unless ``exist_ok``)."""

    @abstractmethod
    def get_config(self, name: str) -> PolicyConfig:
        """The policy's config; ``UnknownPolicyError`` when it does not exist."""

    @abstractmethod
    def put_config(self, config: PolicyConfig) -> PolicyConfig:
        """Replace the config of an existing policy (n_features cannot change)."""

    def update_config(self, name: str, **changes: Any) -> PolicyConfig:
        """Validated copy of the config with ``changes`` applied, then stored."""
        return self.put_config(self.get_config(name).with_changes(**changes))

    def add_arm(self, name: str, arm: str) -> PolicyConfig:
        """Add an arm at runtime; it starts from the prior."""
        cfg = self.get_config(name)
        if arm in cfg.arms:
            return cfg
        return self.update_config(name, arms=(*cfg.arms, arm))

    @abstractmethod
    def list_policies(self) -> list[str]: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    # -- state ---------------------------------------------------------------------------------
    @abstractmethod
    def head(self, name: str) -> Head:
        """Version and config in one cheap call (what ``PolicyReader`` polls)."""

    @abstractmethod
    def read_state(self, name: str) -> PolicyState:
        """Every arm's statistics with the version they belong to."""

    def version(self, name: str) -> int:
        return self.head(name).version

    def watch(self, name: str) -> VersionWatch | None:
        """A subscription to new versions of ``name``, or None if the store has none
        (readers then poll). Opening it may raise if the store is unreachable."""
        return None

    @abstractmethod
    def reset(self, name: str) -> int:
        """Forget all learned state (config kept); returns the new version."""

    @abstractmethod
    def _apply_deltas(
        self,
        config: PolicyConfig,
        decision_ids: Sequence[str],
        deltas: dict[str, ArmStats],
        dual_delta: float = 0.0,
    ) -> tuple[int, list[str]]:
        """Atomically: if any decision_id was already applied, change nothing and return them;
        else mark all as applied, add the deltas (with forgetting), move the multiplier
        (λ ← max(0, λ + dual_delta)), bump and publish the version.
        Returns (version, duplicates)."""

    def apply(
        self, name: str, observations: Iterable[Observation], *, dual_delta: float = 0.0
    ) -> ApplyResult:
        """Add a batch of rewarded decisions exactly once.

        Decision ids already applied (now or in an earlier batch, within the
        dedupe TTL) are skipped; the rest are added in one atomic step. A batch
        with an unknown arm, the wrong feature length or a non-finite number is
        refused whole (``UnknownArmError`` / ``InvalidDeltaError``) and changes nothing.

        ``dual_delta`` moves the policy's Lagrange multiplier, λ ← max(0, λ + dual_delta),
        in the same atomic step as the statistics. The caller computes it from the
        observations it passes: when none of them is new (all duplicates, or an empty
        batch) λ does not move; when some were duplicates, the delta is still applied
        once, with the fresh part (the store cannot split it by observation).
        """
        if not math.isfinite(dual_delta):
            raise InvalidDeltaError("dual_delta must be a finite number; nothing was applied")
        config = self.get_config(name)
        unique: dict[str, Observation] = {}
        in_batch_dupes = 0
        for obs in observations:
            if obs.arm not in config.arms:
                raise UnknownArmError(
                    f"arm {obs.arm!r} is not one of policy {name!r}'s arms {list(config.arms)}"
                )
            if obs.decision_id in unique:
                in_batch_dupes += 1
            else:
                unique[obs.decision_id] = obs
        pending = list(unique.values())
        deltas = aggregate(pending, config.n_features)  # validates before touching the store
        already: set[str] = set()
        while True:
            if not pending:
                version = self.version(name)
                break
            ids = [o.decision_id for o in pending]
            version, dups = self._apply_deltas(config, ids, deltas, dual_delta)
            if not dups:
                break
            already.update(dups)
            pending = [o for o in pending if o.decision_id not in already]
            deltas = aggregate(pending, config.n_features)
        return ApplyResult(version, len(pending), len(already) + in_batch_dupes, frozenset(already))


def check_compatible(old: PolicyConfig, new: PolicyConfig) -> None:
    """Refuse a config change a live policy cannot take (n_features, removed arms)."""
    if new.n_features != old.n_features:
        raise ConfigError(
            f"n_features cannot change from {old.n_features} to {new.n_features} on a live policy; "
            "create a new policy (or reset and recreate this one)"
        )
    removed = [a for a in old.arms if a not in new.arms]
    if removed:
        raise ConfigError(
            f"arms {removed} cannot be removed from a live policy; keep them (set another "
            "baseline_arm) or create a new policy"
        )
