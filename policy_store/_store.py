"""The ``PolicyStore`` interface: where configs and learned state live.

Two implementations pass the same contract tests (tests/integration/test_store_contract.py,
and tests/integration/test_update_rule.py for the statistics update rule):
``InMemoryPolicyStore`` (for embedding and tests without services) and
``RedisPolicyStore`` (production; atomic Lua apply).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._config import PolicyConfig
from ._errors import ConfigError, InvalidDeltaError, UnknownArmError
from ._state import ArmStats, Observation, PolicyState, aggregate

#: how long (s of stream time) a reward's decision_id is remembered for re-sent copies,
#: when observations carry positions: the stream worker's default tombstone time (300 s)
#: plus a 60 s margin (clock skew between workers, sweep interval)
DEFAULT_DEDUPE_WINDOW = 360.0
#: the remembered ids are kept in sets per rewards partition and bucket of this width
DEDUPE_BUCKET_SECONDS = 60.0


@dataclass(frozen=True)
class ApplyRequest:
    """One atomic step of ``PolicyStore.apply`` for a store to carry out (``_apply_deltas``):
    the ``batch`` of observations, its per-arm ``deltas``, the multiplier's step
    ``dual_delta``, the rewards partitions' highest offsets ``marks`` (None: the batch has no
    positions) and the re-send ``window`` (s of stream time)."""

    config: PolicyConfig
    batch: Sequence[Observation]
    deltas: dict[str, ArmStats]
    dual_delta: float = 0.0
    marks: Mapping[int, int] | None = None
    window: float = DEFAULT_DEDUPE_WINDOW


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
    """The cheap part a proxy polls: version, config and when the state last changed;
    ``epoch`` names the policy's incarnation (changed by a create or a rebuild; None in a
    store that keeps none): within one epoch the version never goes down."""

    version: int
    config: PolicyConfig
    updated_at: float | None
    epoch: str | None = None


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
    def _apply_deltas(self, req: ApplyRequest) -> tuple[int, list[str]]:
        """Atomically: if the stored config's ``n_features`` is not ``req.config``'s, raise
        ``InvalidDeltaError``; if any observation of ``batch`` was already applied, change
        nothing and return their decision ids; else add the deltas (with forgetting), move
        the multiplier (λ ← max(0, λ + dual_delta)), remember the batch as applied, bump
        and publish the version (not when there is nothing to add: an empty batch only
        moves the marks). A result that is not finite is refused (``InvalidDeltaError``).

        ``marks`` None: ``batch`` has no positions; an id is applied if seen within the
        policy's ``dedupe_ttl_seconds`` (wall clock). Else ``marks`` maps each rewards
        partition to the highest offset of the caller's batch: an observation is applied
        if its offset is at or below its partition's watermark, or its decision_id was
        applied from that partition with a ``made_at`` in the same ``DEDUPE_BUCKET_SECONDS``
        bucket within ``window`` s of the partition's clock (the largest ``made_at``
        applied, capped by now). Returns (version, duplicates)."""

    def apply(
        self,
        name: str,
        observations: Iterable[Observation],
        *,
        dual_delta: float = 0.0,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
    ) -> ApplyResult:
        """Add a batch of rewarded decisions exactly once.

        Observations with a ``position`` (the stream worker's): one at or below its rewards
        partition's watermark (the highest offset applied, stored atomically with the
        state) is skipped, and so is a re-sent copy of a reward applied within
        ``dedupe_window`` seconds of stream time (its decision_id is remembered that long,
        so the bookkeeping is bounded by rate × window, whatever the history). Either
        every observation has a position or none. Without positions (in-process use)
        decision ids already applied within the policy's ``dedupe_ttl_seconds`` are
        skipped. The rest are added in one atomic step. A batch with an unknown arm, the
        wrong feature length (for the config the store holds now) or a non-finite number
        (in a delta or in the sums it would make) is refused whole (``UnknownArmError`` /
        ``InvalidDeltaError``) and changes nothing.

        ``dual_delta`` moves the policy's Lagrange multiplier, λ ← max(0, λ + dual_delta),
        in the same atomic step as the statistics. The caller computes it from the
        observations it passes: when none of them is new (all duplicates) λ does not move;
        when some were duplicates, the delta is still applied once, with the fresh part
        (the store cannot split it by observation). With no observations at all it moves
        λ alone (a new version); ``-sys.float_info.max`` resets it to 0.
        """
        if not math.isfinite(dual_delta):
            raise InvalidDeltaError("dual_delta must be a finite number; nothing was applied")
        if not dedupe_window > 0:
            raise ValueError(f"dedupe_window must be positive, got {dedupe_window!r}")
        config = self.get_config(name)
        unique: dict[str, Observation] = {}
        in_batch_dupes = 0
        marks: dict[int, int] = {}
        n_obs = 0
        for obs in observations:
            n_obs += 1
            if obs.arm not in config.arms:
                raise UnknownArmError(
                    f"arm {obs.arm!r} is not one of policy {name!r}'s arms {list(config.arms)}"
                )
            pos = obs.position
            if pos is not None and pos[1] > marks.get(pos[0], -1):
                marks[pos[0]] = pos[1]
            if obs.decision_id in unique:
                in_batch_dupes += 1
            else:
                unique[obs.decision_id] = obs
        pending = list(unique.values())
        positioned = sum(o.position is not None for o in pending)
        if positioned not in (0, len(pending)):
            raise InvalidDeltaError(
                "either every observation of a batch carries its position or none does"
            )
        deltas = aggregate(pending, config.n_features)  # validates before touching the store
        already: set[str] = set()
        mode = marks if positioned else None
        while True:
            if not pending:
                alone = dual_delta if n_obs == 0 else 0.0  # λ alone: no batch was given
                if mode or alone:  # else everything was applied before: move the watermarks
                    version, _ = self._apply_deltas(
                        ApplyRequest(config, [], {}, alone, mode, dedupe_window)
                    )
                else:
                    version = self.version(name)
                break
            version, dups = self._apply_deltas(
                ApplyRequest(config, pending, deltas, dual_delta, mode, dedupe_window)
            )
            if not dups:
                break
            already.update(dups)
            pending = [o for o in pending if o.decision_id not in already]
            deltas = aggregate(pending, config.n_features)
        return ApplyResult(version, len(pending), len(already) + in_batch_dupes, frozenset(already))


def dedupe_bucket(made_at: float) -> int:
    """The bucket a reward made at ``made_at`` is remembered in (``DEDUPE_BUCKET_SECONDS``)."""
    return math.floor(made_at / DEDUPE_BUCKET_SECONDS)


def check_dimension(stored: PolicyConfig, config: PolicyConfig) -> None:
    """Refuse deltas built for a config whose ``n_features`` is not the stored one's."""
    if stored.n_features != config.n_features:
        raise InvalidDeltaError(
            f"policy {config.name!r} now has n_features={stored.n_features}, the batch was built "
            f"for {config.n_features} (the policy was re-created meanwhile); nothing was applied"
        )


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
