"""``ProviderSelector``: choose an LLM provider per request and log what happened.

Two modes behind one API, each a small source object (``_sources``):

* **In-process** (no services): ``ProviderSelector(providers=[...])`` keeps the
  policy in an ``InMemoryPolicyStore`` read through a ``PolicyReader``; outcomes
  are learnt immediately (the next ``select`` sees them).
* **Streaming**: ``ProviderSelector.connect(policy, settings)`` reads parameters
  from Redis through a ``PolicyReader`` (background refresh, no network on the
  request path) and publishes a ``DecisionEvent`` per selection and
  ``OutcomeEvent`` parts per report through an ``EventProducer``.

One selection flow for both, and for ``SafeProviderSelector``:

1. policy never loaded → the baseline (else the first of ``providers``) serves,
   no event is logged; one WARNING says why (the name looked for, the policies that
   exist, or the store's error: ``producers._missing``);
2. kill switch (``enabled=False``) or parameters older than ``max_staleness_seconds``
   → the baseline (else the policy's ``fallback_arm``) serves, cohort ``baseline``;
3. otherwise the learned policy chooses; the rollout step (``Rollout``, set by
   ``SafeProviderSelector``; a plain selector has none and always serves the learned
   choice) may hand the request to the baseline, logging the learned choice beside it.

``fallbacks`` counts the requests of steps 1 and 2 — the learned policy could not be
used — in both selectors; a request the rollout gives the baseline is not a fallback.

Cold start: an arm with fewer than ``warm_start`` observations is served
before the bandit is trusted (uniformly among such arms, with that probability
as the propensity), like UCB1's initial pulls. Before that, a quality floor relative to
the baseline arm serves the baseline arm (propensity 1) until the floor has a target
(``policy_store.awaits_baseline``: that arm's quality known to within the margin), so the
policy does not trade quality for cost before it knows what quality it must keep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from policy_store import (
    AlgorithmConfig,
    NoSnapshotError,
    Objective,
    PolicyConfig,
    PolicyReader,
    ReaderView,
    RedisPolicyStore,
    RewardSpec,
    Settings,
    Snapshot,
    awaits_baseline,
)

from ._decision import Decision, _DecisionEncoder, new_decision_id
from ._features import N_DEFAULT_FEATURES, FeatureFn, check_vector, default_features
from ._kafka import EventProducer
from ._outcomes import OutcomeTracker
from ._reporting import OutcomeReporting
from ._rollout import Rollout
from ._sources import DEFAULT_PROVIDERS, InProcessSource, StreamingSource, in_process_config
from ._topics import Topics


class ProviderSelector(OutcomeReporting):
    """Pick a provider per request with a contextual bandit; log decisions and outcomes.

    With the policy disabled (kill switch) or parameters older than its
    ``max_staleness_seconds``, the policy's ``fallback_arm`` is served (cohort
    ``baseline``); ``SafeProviderSelector`` adds a baseline object and the rollout.

    In-process, ``objective`` (``policy_store.Objective``; default: the weighted reward of
    ``reward_spec``) and ``baseline_arm`` (the provider served today; needed by a quality
    floor given as a margin, and the fallback) go into the policy's config, e.g.
    ``objective=Objective(kind="quality_floor", quality_margin=0.01), baseline_arm="gpt-4"``.

    >>> selector = ProviderSelector(seed=0)
    >>> p = selector.select_provider({"prompt": "Quick test", "priority": "speed"})
    >>> p in ("gpt-4", "claude-3", "llama")
    True
    >>> selector.update_from_response(
    ...     {"prompt": "Quick test", "priority": "speed"}, p,
    ...     {"quality": 0.9, "cost": 0.5, "latency": 0.5})
    True
    """

    def __init__(
        self,
        providers: Sequence[str] | None = None,
        feature_fn: FeatureFn | None = None,
        reward_spec: RewardSpec | None = None,
        algorithm: AlgorithmConfig | str | None = None,
        seed: int | np.random.Generator | None = None,
        *,
        policy: str = "provider_selection",
        n_features: int | None = None,
        reader: PolicyReader | None = None,
        producer: EventProducer | None = None,
        topics: Topics | None = None,
        warm_start: int = 1,
        max_pending: int = 100_000,
        owns_reader: bool = False,
        objective: Objective | None = None,
        baseline_arm: str | None = None,
    ) -> None:
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._feature_fn: Callable[[Mapping[str, Any]], Sequence[float]] = (
            feature_fn or default_features
        )
        self.producer = producer
        self.topics = topics or Topics()
        self._decisions_topic = self.topics.decisions
        self._outcomes_topic = self.topics.outcomes
        self.warm_start = int(warm_start)
        self.providers = tuple(providers) if providers else None
        if isinstance(algorithm, str):
            algorithm = AlgorithmConfig(name=algorithm)
        self._source: InProcessSource | StreamingSource
        if reader is not None and (objective is not None or baseline_arm is not None):
            msg = "objective and baseline_arm are in-process options; in streaming mode"
            raise TypeError(f"{msg} they are fields of the policy config (update_config)")
        if reader is None:
            self.providers = self.providers or DEFAULT_PROVIDERS
            d = n_features or (None if feature_fn is not None else N_DEFAULT_FEATURES)
            make = partial(
                in_process_config,
                policy,
                self.providers,
                reward=reward_spec,
                algorithm=algorithm,
                rollout_fraction=self._in_process_rollout_fraction(),
                objective=objective,
                baseline_arm=baseline_arm,
            )
            self._source = InProcessSource(policy, make, self._feature_fn, d)
        else:
            self._source = StreamingSource(reader, owns_reader)
        self.streaming = self._source.learner is None
        self.policy = self._source.policy
        # the hot path reads these directly (in-process, the reader may be made at first use)
        self._reader: PolicyReader | None = self._source.reader
        self._staleness = self._source.staleness
        self._rollout: Rollout | None = self._make_rollout()
        self._outcomes = OutcomeTracker(max_pending, self._source.learner)
        self._track_all = self._outcomes.track_all
        self._encoder: _DecisionEncoder | None = None
        self._untried: tuple[Snapshot | None, tuple[int, ...], int | None] = (None, (), None)
        # counters
        self.decisions = 0
        self.unlogged = 0
        self.fallbacks = 0

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        policy: str | None = None,
        settings: Settings | None = None,
        *,
        feature_fn: FeatureFn | None = None,
        seed: int | None = None,
        providers: Sequence[str] | None = None,
        producer: EventProducer | None = None,
        **kwargs: Any,
    ) -> ProviderSelector:
        """Streaming mode: parameters from Redis, events to Kafka, both from ``settings``.

        ``providers`` is only used to serve something (the first one) while the
        policy has never been loaded (Redis unreachable at start).
        """
        settings = settings or Settings()
        name = policy or settings.policy
        store = RedisPolicyStore.from_settings(settings)
        reader = PolicyReader(store, name, poll_interval=settings.poll_interval, seed=seed)
        return cls(
            providers=providers,
            feature_fn=feature_fn,
            seed=seed,
            policy=name,
            reader=reader,
            producer=producer or EventProducer(settings),
            topics=Topics.from_settings(settings),
            owns_reader=True,
            **kwargs,
        )

    def _make_rollout(self) -> Rollout | None:
        """The rollout step: none for a plain selector (the learned policy always serves)."""
        return None

    def _in_process_rollout_fraction(self) -> float:
        return 1.0

    def close(self, timeout: float = 5.0) -> None:
        """Flush the producer (up to ``timeout`` s) and stop the reader if this object made it."""
        if self.producer is not None:
            self.producer.close(timeout)
        self._source.close()

    def __enter__(self) -> ProviderSelector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the policy ----------------------------------------------------------------------------
    @property
    def reader(self) -> PolicyReader | None:
        """The ``PolicyReader`` selections run on (in-process: over the in-memory store;
        None until a user feature function has sized the policy)."""
        return self._source.reader

    @property
    def config(self) -> PolicyConfig | None:
        """The policy's current config (None while it has never been loaded)."""
        reader = self._source.reader
        view = reader.view if reader is not None else None
        return view.config if view is not None else None

    def _view_for(self, request: Mapping[str, Any] | None) -> ReaderView | None:
        view = self._source.view_for(request)  # may create the in-process policy
        self._reader = self._source.reader
        return view

    def features(self, request: Mapping[str, Any], n_features: int | None = None) -> tuple:
        """The feature vector of ``request``, checked against the policy's ``n_features``."""
        if n_features is None:
            view = self._view_for(request)
            n_features = view.snapshot.d if view is not None else None
        values = self._feature_fn(request)
        if n_features is None:
            return check_vector(values, len(values))
        return check_vector(values, n_features)

    # -- selection -----------------------------------------------------------------------------
    def select(self, request: Mapping[str, Any], request_key: str | None = None) -> Decision:
        """Choose a provider for ``request`` and publish the decision (never blocks).

        A plain selector raises ``FeatureError`` for a bad feature vector;
        ``SafeProviderSelector`` serves its baseline instead of raising."""
        try:
            reader = self._reader
            view = reader.view if reader is not None else self._view_for(request)
            if view is None:
                return self._unavailable(request)
            snap = view.snapshot
            x = check_vector(self._feature_fn(request), snap.d)
            config = view.config
            if not config.enabled or self._staleness() > config.max_staleness_seconds:
                # kill switch, or parameters too old: the baseline, learned policy not consulted
                self.fallbacks += 1
                arm = self._baseline_arm(request, config.fallback_arm)
                return self._serve_baseline(view, x, arm, "baseline", None, None)
            arm, propensity, probs = self._learned(view, x)
            rollout = self._rollout
            if rollout is None or rollout.learned_serves(config, request, request_key, self._rng):
                return self._decide(view, x, arm, propensity, "rl", None, None)
            baseline = rollout.baseline_arm(request, config.fallback_arm)
            i = snap.index.get(baseline)
            learned_p = float(probs[i]) if i is not None else None
            cohort = "shadow" if config.shadow else "baseline"
            return self._serve_baseline(view, x, baseline, cohort, arm, learned_p)
        except Exception as exc:
            return self._select_failed(request, exc)

    def _select_failed(self, request: Mapping[str, Any], exc: Exception) -> Decision:
        """A plain selector lets the error (``FeatureError``, …) reach the caller."""
        raise exc

    def select_provider(self, request: Mapping[str, Any]) -> str:
        """Original API: the provider's name. Pair it with ``update_from_response``."""
        d = self.select(request)
        if d.logged:
            key = (d.features, d.provider)
            self._outcomes.remember(d.decision_id, d.provider, d.features, key, d.cohort)
        return d.provider

    def _learned(self, view: ReaderView, x: tuple[float, ...]) -> tuple[str, float, Any]:
        """The learned policy's choice: (arm, its probability, distribution over all arms)."""
        snap = view.snapshot
        cached_snap, untried, base = self._untried
        if cached_snap is not snap:
            n = snap.n.tolist()
            untried = tuple(i for i, v in enumerate(n) if v < self.warm_start)
            config = view.config
            base = snap.index.get(config.fallback_arm) if awaits_baseline(config, snap) else None
            self._untried = (snap, untried, base)
        if base is not None:  # a quality floor without a target yet: the baseline arm
            return snap.arms[base], 1.0, [1.0 if j == base else 0.0 for j in range(len(snap.arms))]
        if untried:
            k = len(untried)
            i = untried[int(self._rng.random() * k)] if k > 1 else untried[0]
            probs = [1.0 / k if j in untried else 0.0 for j in range(len(snap.arms))]
            return snap.arms[i], 1.0 / k, probs
        i, propensity, probs = view.algorithm.choose(snap, np.asarray(x), self._rng)
        return snap.arms[i], propensity, probs

    def _baseline_arm(self, request: Mapping[str, Any], fallback: str | None) -> str | None:
        rollout = self._rollout
        return fallback if rollout is None else rollout.baseline_arm(request, fallback)

    def _serve_baseline(
        self,
        view: ReaderView,
        x: tuple[float, ...],
        arm: str | None,
        cohort: str,
        learned_arm: str | None,
        learned_propensity: float | None,
    ) -> Decision:
        """A baseline decision (propensity 1); unlogged if ``arm`` is not one of the policy's."""
        if arm not in view.snapshot.index:
            # served, but an event would be refused downstream
            self.unlogged += 1
            version = int(view.snapshot.version)
            return Decision(new_decision_id(), arm, 1.0, cohort, version, x, None, False)
        return self._decide(view, x, arm, 1.0, cohort, learned_arm, learned_propensity)

    def _decide(
        self,
        view: ReaderView,
        x: tuple[float, ...],
        arm: str,
        propensity: float,
        cohort: str,
        learned_arm: str | None,
        learned_propensity: float | None,
    ) -> Decision:
        decision_id = new_decision_id()
        snap = view.snapshot
        self.decisions += 1
        if self.producer is not None:
            enc = self._encoder
            if enc is None or enc.snapshot is not snap:
                enc = self._encoder = _DecisionEncoder(self.policy, snap)
            value = enc.encode(
                decision_id,
                time.time(),
                arm,
                propensity,
                x,
                cohort,
                learned_arm,
                learned_propensity,
            )
            self.producer.send(self._decisions_topic, decision_id, value)
        decision = Decision(
            decision_id, arm, propensity, cohort, int(snap.version), x, learned_arm, True
        )
        if self._track_all:
            self._outcomes.remember(decision_id, arm, x, None, cohort)
        return decision

    def _unavailable(self, request: Mapping[str, Any]) -> Decision:
        """Nothing loaded yet (Redis unreachable since start): the baseline or first provider."""
        self.fallbacks += 1
        self.unlogged += 1
        arm = self._baseline_arm(request, self.providers[0] if self.providers else None)
        if isinstance(self._source, StreamingSource):  # in-process policies always exist
            self._source.unavailable(arm)
        if arm is None:
            raise NoSnapshotError(
                f"policy {self.policy!r} is not loaded (Redis unreachable or policy missing) and "
                "no fallback is known; pass providers=[...] to connect() so one can be served"
            )
        return Decision(new_decision_id(), arm, 1.0, "baseline", 0, (), None, False)

    # -- introspection -------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Selector counters, plus the producer's when there is one."""
        out: dict[str, Any] = {
            "decisions": self.decisions,
            "unlogged": self.unlogged,
            "fallbacks": self.fallbacks,
            "unmatched_updates": self._outcomes.unmatched,
            "outcome_conflicts": self._outcomes.conflicts,
            "outcome_duplicates": self._outcomes.duplicates,
            "pending": len(self._outcomes),
        }
        if self.producer is not None:
            out.update({f"producer_{k}": v for k, v in self.producer.metrics().items()})
        return out
