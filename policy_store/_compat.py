"""The seed's in-process API: ``ContextualBandit`` and the abstract ``RLAgent``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._config import AlgorithmConfig
from ._state import ArmStats, Observation, PolicyState, aggregate
from .bandits import Algorithm, Snapshot, make_algorithm


class RLAgent(ABC):
    """Anything that picks an action for a state and learns from the reward."""

    @abstractmethod
    def select_action(self, state: Any) -> int: ...

    @abstractmethod
    def update(self, state: Any, action: int, reward: float, next_state: Any = None) -> None: ...


class ContextualBandit(RLAgent):
    """In-process contextual bandit over ``n_arms`` arms and ``n_features`` features.

    Uses the project's default algorithm (``AlgorithmConfig()``) unless given a
    config or an ``Algorithm`` object. Selection draws from ``seed`` (an int or a
    ``numpy.random.Generator``), so equal seeds give equal decisions.

    >>> bandit = ContextualBandit(n_arms=2, n_features=2, seed=0)
    >>> for _ in range(200):
    ...     a = bandit.select_action([1.0, 0.0])
    ...     bandit.update([1.0, 0.0], a, 1.0 if a == 1 else 0.0)
    >>> bandit.select_action([1.0, 0.0])
    1
    """

    def __init__(
        self,
        n_arms: int,
        n_features: int,
        *,
        algorithm: AlgorithmConfig | Algorithm | None = None,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.n_arms = int(n_arms)
        self.n_features = int(n_features)
        if isinstance(algorithm, Algorithm):
            self.config = None
            self.algorithm = algorithm
        else:
            self.config = algorithm or AlgorithmConfig()
            self.algorithm = make_algorithm(self.config)
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._arms = tuple(str(i) for i in range(self.n_arms))
        self._stats = [ArmStats.zeros(self.n_features) for _ in range(self.n_arms)]
        self._snap = None
        self.last_propensity: float | None = None

    @property
    def state(self) -> PolicyState:
        return PolicyState(arms={a: s for a, s in zip(self._arms, self._stats, strict=True)})

    def _snapshot(self) -> Snapshot:
        if self._snap is None:
            self._snap = self.algorithm.snapshot(self.state, self._arms, self.n_features)
        return self._snap

    def _x(self, features: Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.n_features:
            raise ValueError(
                f"expected {self.n_features} features, got {x.shape[0]}; "
                "pass a vector of n_features numbers"
            )
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinity")
        return x

    def select_action(self, features: Sequence[float] | np.ndarray) -> int:
        sel = self.algorithm.select(self._snapshot(), self._x(features), self._rng)
        self.last_propensity = sel.propensity
        return sel.index

    def probabilities(self, features: Sequence[float] | np.ndarray) -> np.ndarray:
        return self.algorithm.probabilities(self._snapshot(), self._x(features), self._rng)

    def update(self, features: Any, action: int, reward: float, next_state: Any = None) -> None:
        x = self._x(features)
        if not 0 <= int(action) < self.n_arms:
            raise ValueError(
                f"action {action} out of range 0..{self.n_arms - 1}; pass the index "
                "select_action returned"
            )
        if not np.isfinite(reward):
            raise ValueError("reward must be a finite number")
        action = int(action)
        arm = self._arms[action]
        delta = aggregate([Observation("", arm, tuple(x.tolist()), float(reward))], x.size)[arm]
        new = self._stats[action].updated(delta, self.algorithm.forgetting)
        self._stats[action] = new
        if self._snap is not None:
            self._snap = self._snap.with_arm(arm, new, self.algorithm.ridge)

    def add_arm(self) -> int:
        """Add an arm at runtime; returns its index."""
        zeros = ArmStats.zeros(self.n_features)
        self._stats.append(zeros)
        self.n_arms += 1
        self._arms = tuple(str(i) for i in range(self.n_arms))
        if self._snap is not None:
            self._snap = self._snap.with_arm(self._arms[-1], zeros, self.algorithm.ridge)
        return self.n_arms - 1
