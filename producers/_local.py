"""``LocalPolicy``: an in-process policy with the reading interface of ``PolicyReader``.

Used by ``ProviderSelector`` when no services are given: learning is applied
immediately (one d×d factorisation of the updated arm), and the config
(rollout fraction, kill switch, shadow) can be changed with ``update_config``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from policy_store import ArmStats, PolicyConfig, PolicyState, ReaderView, make_algorithm


class LocalPolicy:
    """Config + sufficient statistics in memory; ``view`` is swapped atomically on change."""

    def __init__(self, config: PolicyConfig) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, ArmStats] = {}
        self._version = 0
        self._install(config)

    def _install(self, config: PolicyConfig) -> None:
        algo = make_algorithm(config.algorithm)
        state = PolicyState(arms=dict(self._stats), version=self._version)
        snap = algo.snapshot(state, config.arms, config.n_features)
        self._view = ReaderView(config, algo, snap, time.monotonic())

    # -- the PolicyReader interface used by the selectors --------------------------------------
    @property
    def view(self) -> ReaderView:
        return self._view

    @property
    def config(self) -> PolicyConfig:
        return self._view.config

    @property
    def version(self) -> int:
        return self._view.snapshot.version

    def staleness(self) -> float:
        """Always 0: the parameters are updated in this process."""
        return 0.0

    def close(self) -> None:
        """Nothing to stop (same interface as ``PolicyReader``)."""

    # -- changes -------------------------------------------------------------------------------
    def update_config(self, **changes: Any) -> PolicyConfig:
        """Change the config (e.g. ``rollout_fraction``, ``enabled``, ``shadow``, ``arms``)."""
        with self._lock:
            config = self._view.config.with_changes(**changes)
            if config.n_features != self._view.config.n_features:
                raise ValueError("n_features cannot change on a live policy")
            self._install(config)
            return config

    def learn(self, arm: str, features: Sequence[float], reward: float, weight: float = 1.0) -> int:
        """Add one rewarded observation to ``arm``; returns the new version."""
        with self._lock:
            view = self._view
            if arm not in view.snapshot.index:
                raise ValueError(
                    f"provider {arm!r} is not one of the policy's providers "
                    f"{list(view.config.arms)}; add it first"
                )
            if not np.isfinite(reward):
                raise ValueError("reward must be a finite number")
            x = np.asarray(features, dtype=np.float64)
            w = float(weight)
            delta = ArmStats.of(w * np.outer(x, x), w * float(reward) * x, w)
            old = self._stats.get(arm) or ArmStats.zeros(view.snapshot.d)
            new = old.decayed(view.algorithm.forgetting**w) + delta
            self._stats[arm] = new
            self._version += 1
            snap = view.snapshot.with_arm(arm, new, view.algorithm.ridge)
            snap = dataclasses.replace(snap, version=self._version, updated_at=time.time())
            self._view = ReaderView(view.config, view.algorithm, snap, time.monotonic())
            return self._version
