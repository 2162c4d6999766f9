"""``InMemoryPolicyStore``: the same contract as Redis, in one process (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ._applied import Applied
from ._config import PolicyConfig
from ._errors import ConfigError, InvalidDeltaError, UnknownPolicyError
from ._state import ArmStats, Observation, PolicyState, apply_deltas
from ._store import (
    ApplyRequest,
    Head,
    PolicyStore,
    check_compatible,
    check_dimension,
)

#: expired dedupe ids are dropped when a policy's id dict reaches twice its size after
#: the last purge, and at least this many entries: amortised O(1) per id.
PURGE_MIN_GROWTH = 1024


class InMemoryPolicyStore(PolicyStore):
    """Policies in a dict, with the same bookkeeping as Redis: watermarks and re-send
    buckets for positioned observations; without positions, dedupe ids that expire after
    the policy's TTL (purged as the dict grows, so a long-running store stays bounded)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._configs: dict[str, PolicyConfig] = {}
        self._states: dict[str, dict[str, ArmStats]] = {}
        self._duals: dict[str, float] = {}
        self._versions: dict[str, int] = {}
        self._updated: dict[str, float | None] = {}
        self._seen: dict[str, dict[str, float]] = {}
        self._purge_at: dict[str, int] = {}
        self._applied: dict[str, Applied] = {}
        self._clock = clock

    def _need(self, name: str) -> PolicyConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise UnknownPolicyError(
                f"no policy named {name!r}; create it first (rl-commons policy create)"
            ) from None

    def create(self, config: PolicyConfig, *, exist_ok: bool = False) -> PolicyConfig:
        with self._lock:
            if config.name in self._configs:
                if exist_ok:
                    return self._configs[config.name]
                raise ConfigError(
                    f"policy {config.name!r} already exists; delete it or pick another name"
                )
            self._configs[config.name] = config
            self._states[config.name] = {}
            self._duals[config.name] = 0.0
            self._versions[config.name] = 0
            self._updated[config.name] = None
            self._seen[config.name] = {}
            self._purge_at[config.name] = PURGE_MIN_GROWTH
            self._applied[config.name] = Applied()
            return config

    def get_config(self, name: str) -> PolicyConfig:
        with self._lock:
            return self._need(name)

    def put_config(self, config: PolicyConfig) -> PolicyConfig:
        with self._lock:
            old = self._need(config.name)
            check_compatible(old, config)
            self._configs[config.name] = config
            return config

    def list_policies(self) -> list[str]:
        with self._lock:
            return sorted(self._configs)

    def delete(self, name: str) -> None:
        with self._lock:
            self._need(name)
            for d in (
                self._configs,
                self._states,
                self._duals,
                self._versions,
                self._updated,
                self._seen,
                self._purge_at,
                self._applied,
            ):
                d.pop(name, None)

    def head(self, name: str) -> Head:
        with self._lock:
            return Head(
                self._versions[name] if name in self._versions else 0,
                self._need(name),
                self._updated.get(name),
            )

    def read_state(self, name: str) -> PolicyState:
        with self._lock:
            self._need(name)
            return PolicyState(
                arms=dict(self._states[name]),
                version=self._versions[name],
                updated_at=self._updated[name],
                dual=self._duals[name],
            )

    def reset(self, name: str) -> int:
        with self._lock:
            self._need(name)
            self._states[name] = {}
            self._duals[name] = 0.0
            return self._bump(name)

    def _bump(self, name: str) -> int:
        self._versions[name] += 1
        self._updated[name] = self._clock()
        return self._versions[name]

    def _apply_deltas(self, req: ApplyRequest) -> tuple[int, list[str]]:
        config, batch, deltas = req.config, req.batch, req.deltas
        dual_delta, marks, window = req.dual_delta, req.marks, req.window
        name = config.name
        with self._lock:
            check_dimension(self._need(name), config)
            now = self._clock()
            if marks is None:
                seen = self._seen[name]
                dups = [o.decision_id for o in batch if seen.get(o.decision_id, -1.0) > now]
            else:
                dups = [o.decision_id for o in batch if self._applied[name].applied(o)]
            if dups:
                return self._versions[name], dups
            with np.errstate(over="ignore", invalid="ignore"):  # refused just below
                states = apply_deltas(self._states[name], deltas, config.algorithm.forgetting)
            for arm in deltas:
                try:
                    states[arm].validate(config.n_features)
                except InvalidDeltaError:
                    raise InvalidDeltaError(
                        f"adding the batch would make arm {arm!r}'s statistics non-finite; "
                        "nothing was applied"
                    ) from None
            if marks is None:
                self._remember_ids(config, batch, now)
            else:
                self._applied[name].record(batch, marks, now, window)
            if not deltas and not dual_delta:
                return self._versions[name], []
            self._states[name] = states
            if dual_delta:
                self._duals[name] = max(0.0, self._duals[name] + dual_delta)
            return self._bump(name), []

    def _remember_ids(self, config: PolicyConfig, batch: Sequence[Observation], now: float) -> None:
        name = config.name
        seen = self._seen[name]
        expiry = now + config.dedupe_ttl_seconds
        for o in batch:
            seen[o.decision_id] = expiry
        if len(seen) >= self._purge_at[name]:
            self._seen[name] = seen = {i: t for i, t in seen.items() if t > now}
            self._purge_at[name] = max(2 * len(seen), PURGE_MIN_GROWTH)
