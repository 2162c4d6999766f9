"""Where a selector's parameters come from: one small object per mode.

* ``StreamingSource``: a ``PolicyReader`` over the Redis store, refreshed in the
  background; the stream workers learn, the selector only publishes outcomes
  (``learner`` is None).
* ``InProcessSource``: an ``InMemoryPolicyStore`` and a ``PolicyReader`` over it
  that this object refreshes itself after every change (no background thread), so a
  learnt outcome or a config change is in the very next ``select``; after a learnt
  outcome only the arm it changed is refactorised (``PolicyReader.refresh_applied``). It is its own
  ``learner``: observations go through the store's ``apply`` (the same statistics
  update as every store), with their outcome components; under a constrained
  objective each one also moves the multiplier λ by ``policy_store.DualSteps`` (the
  stream worker's rule, one outcome at a time; kept between outcomes and started again
  from the current snapshot when the config changed or the evidence grew by 1 %),
  atomically with the observation, and the reader rebuilds θ at the new λ. With a user feature
  function and no ``n_features`` the policy is created at first use, sized by that
  request's feature vector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policy_store import (
    AlgorithmConfig,
    DualSteps,
    InMemoryPolicyStore,
    Objective,
    Observation,
    PolicyConfig,
    PolicyReader,
    ReaderView,
    RewardSpec,
    component_values,
    make_config,
    outcome_reward,
)

from ._features import FeatureFn, check_vector
from ._missing import warn_not_loaded

DEFAULT_PROVIDERS = ("gpt-4", "claude-3", "llama")

#: The in-process default: LinUCB with a narrower confidence width than the streaming
#: default, because an embedded selector learns from few requests per context and
#: should exploit sooner (see docs/proxy.md for the measurement behind it).
IN_PROCESS_ALGORITHM = AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02)


def in_process_config(
    policy: str,
    providers: Sequence[str],
    n_features: int,
    *,
    reward: RewardSpec | None = None,
    algorithm: AlgorithmConfig | None = None,
    rollout_fraction: float = 1.0,
    objective: Objective | None = None,
    baseline_arm: str | None = None,
) -> PolicyConfig:
    """The config of an in-process policy (``IN_PROCESS_ALGORITHM`` unless one is given)."""
    return make_config(
        name=policy,
        arms=list(providers),
        n_features=n_features,
        algorithm=algorithm or IN_PROCESS_ALGORITHM,
        reward=reward or RewardSpec(),
        objective=objective or Objective(),
        baseline_arm=baseline_arm,
        rollout_fraction=rollout_fraction,
    )


class StreamingSource:
    """Parameters read from a store another process updates (the stream workers)."""

    learner = None

    def __init__(self, reader: PolicyReader, owns_reader: bool = False) -> None:
        self.reader = reader
        self.policy = reader.policy
        self._owns_reader = owns_reader
        self.staleness = reader.staleness
        self.diagnosis: threading.Thread | None = None  # the one not-loaded warning

    def view_for(self, request: Mapping[str, Any] | None) -> ReaderView | None:
        """The current view (None until the policy was loaded once)."""
        return self.reader.view

    def unavailable(self, served: str | None) -> None:
        """Not loaded, ``served`` served instead: warn once, saying why (``warn_not_loaded``,
        on a thread: it asks the store, which must not delay the request)."""
        if self.diagnosis is None:
            self.diagnosis = threading.Thread(
                target=warn_not_loaded, args=(self.reader, served), daemon=True
            )
            self.diagnosis.start()

    def update_config(self, **changes: Any) -> PolicyConfig:
        raise TypeError(
            "in streaming mode the config lives in Redis: change it with the store's "
            "update_config or `rl-commons policy`"
        )

    def close(self) -> None:
        """Stop the reader if the selector made it."""
        if self._owns_reader:
            self.reader.close()


class InProcessSource:
    """Config and statistics in this process; every change is visible at once."""

    def __init__(
        self,
        policy: str,
        make_config: Callable[[int], PolicyConfig],
        feature_fn: FeatureFn,
        n_features: int | None,
    ) -> None:
        self.policy = policy
        self.learner = self
        self.store = InMemoryPolicyStore()
        self.reader: PolicyReader | None = None
        self._steps: DualSteps | None = None  # a constrained objective's multiplier steps
        self._make_config = make_config
        self._feature_fn = feature_fn
        self._lock = threading.Lock()
        if n_features:
            self._create(n_features)

    def _create(self, n_features: int) -> PolicyReader:
        config = self.store.create(self._make_config(n_features))
        reader = PolicyReader(self.store, config.name, start=False, notify=False)
        reader.refresh()
        self.reader = reader
        return reader

    def _ensure(self, request: Mapping[str, Any] | None) -> PolicyReader:
        reader = self.reader
        if reader is None:  # a user feature function: the size is known at first use
            with self._lock:
                reader = self.reader
                if reader is None:
                    values = self._feature_fn(request if request is not None else {})
                    reader = self._create(len(check_vector(values, len(values))))
        return reader

    def view_for(self, request: Mapping[str, Any] | None) -> ReaderView | None:
        """The current view, creating the policy from ``request``'s features if needed."""
        return self._ensure(request).view

    @staticmethod
    def staleness() -> float:
        """Always 0: every change is made in this process and refreshed at once."""
        return 0.0

    @property
    def spec(self) -> RewardSpec:
        """The policy's reward spec."""
        return self._ensure(None).view.config.reward

    def learn(
        self,
        decision_id: str,
        arm: str,
        features: Sequence[float],
        outcome: Mapping[str, Any],
        learned: bool = True,
    ) -> int:
        """Learn one merged outcome: its reward and ``policy_store.component_values`` go
        through the store's ``apply``, which under a constrained objective also moves λ;
        then the snapshot is refreshed (only that arm when λ did not move). The new version."""
        reader = self._ensure(None)
        config = reader.view.config
        if arm not in config.arms:
            raise ValueError(
                f"provider {arm!r} is not one of the policy's providers {list(config.arms)}; "
                "add it first"
            )
        spec = config.reward
        components = component_values(
            spec,
            quality=outcome.get("quality"),
            cost=outcome.get("cost"),
            latency=outcome.get("latency"),
            error=bool(outcome.get("error")),
        )
        reward = outcome_reward(spec, outcome)
        obs = Observation(decision_id, arm, tuple(features), reward, components=components)
        with self._lock:  # apply and refresh together: a later version is never replaced
            view = reader.view
            steps = self._dual_steps(view)
            # only what the learned policy served moves λ (baseline/shadow: statistics only)
            delta = steps.step([obs], [learned]) if steps is not None else 0.0
            version = self.store.apply(view.config.name, [obs], dual_delta=delta).version
            if steps is not None:
                steps.version = version
            reader.refresh_applied((arm,), version)
        return version

    def _dual_steps(self, view: ReaderView) -> DualSteps | None:
        """The multiplier's steps, current with ``view`` (None for the weighted objective)."""
        config = view.config
        if not config.objective.constrained:
            self._steps = None
            return None
        steps = self._steps
        if steps is None or steps.version != view.snapshot.version or steps.stale(config):
            steps = self._steps = DualSteps(config, view.snapshot)
        return steps

    def update_config(self, **changes: Any) -> PolicyConfig:
        """Change the config now (e.g. ``rollout_fraction``, ``enabled``, ``shadow``, ``arms``)."""
        reader = self._ensure({})
        with self._lock:
            config = self.store.update_config(self.policy, **changes)
            reader.refresh()
        return config

    def close(self) -> None:
        """Nothing runs in the background."""
