"""``ProviderSelector``: choose an LLM provider per request and log what happened.

Two modes behind one API:

* **In-process** (no services): ``ProviderSelector(providers=[...])`` keeps the
  policy in memory (``LocalPolicy``); outcomes are learnt immediately.
* **Streaming**: ``ProviderSelector.connect(policy, settings)`` reads parameters
  from Redis through a ``PolicyReader`` (background refresh, no network on the
  request path) and publishes a ``DecisionEvent`` per selection and
  ``OutcomeEvent`` parts per report through an ``EventProducer``.

Cold start: an arm with fewer than ``warm_start`` observations is served
before the bandit is trusted (uniformly among such arms, with that probability
as the propensity), like UCB1's initial pulls.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError
from pydantic_core import to_json

from policy_store import (
    AlgorithmConfig,
    NoSnapshotError,
    PolicyReader,
    ReaderView,
    RedisPolicyStore,
    RewardSpec,
    Settings,
    Snapshot,
    make_config,
)

from ._events import OutcomeEvent
from ._features import N_DEFAULT_FEATURES, FeatureFn, check_vector, default_features
from ._kafka import EventProducer
from ._local import LocalPolicy
from ._topics import Topics

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("gpt-4", "claude-3", "llama")

#: The in-process default: LinUCB with a narrower confidence width than the streaming
#: default, because an embedded selector learns from few requests per context and
#: should exploit sooner (see docs/proxy.md for the measurement behind it).
IN_PROCESS_ALGORITHM = AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02)


class Decision(NamedTuple):
    """One selection: what was served, with which probability, in which cohort.

    ``logged`` is False when no DecisionEvent could be written (policy not loaded,
    or a baseline arm that is not one of the policy's arms). A named tuple: cheap
    to create on the hot path, immutable.
    """

    decision_id: str
    provider: str
    propensity: float
    cohort: str
    policy_version: int
    features: tuple[float, ...]
    learned_provider: str | None = None
    logged: bool = True


@dataclass(slots=True)
class _Pending:
    """A decision waiting for its outcome (in-process learning, legacy update API)."""

    arm: str
    features: tuple[float, ...]
    index_key: Any = None
    parts: dict[str, Any] = field(default_factory=dict)


class _DecisionEncoder:
    """DecisionEvent JSON from a prefix cached per snapshot: no validation on the hot path.

    The fields that do not change within a snapshot (policy, arms, version) are
    rendered once; the rest goes through pydantic-core's ``to_json`` (Rust, shortest
    round-trip floats, proper string escaping) and is spliced in after them. Only
    values the selector produced itself go in (arm names validated by the policy
    config, finite features checked by ``check_vector``, hex ids), so the bytes are a
    valid event; a unit test checks they parse into the same event as the validated
    model. Every float is written exactly (shortest repr that reads back equal).
    """

    __slots__ = ("head", "snapshot", "policy")

    def __init__(self, policy: str, snap: Snapshot) -> None:
        self.snapshot = snap
        self.policy = policy
        head = {
            "schema_version": 1,
            "type": "decision",
            "policy": policy,
            "arms": list(snap.arms),
            "policy_version": int(snap.version),
        }
        self.head = to_json(head)[:-1] + b","  # '{...,' : the per-decision fields follow

    def encode(
        self,
        decision_id: str,
        timestamp: float,
        arm: str,
        propensity: float,
        features: tuple[float, ...],
        cohort: str,
        learned_arm: str | None,
        learned_propensity: float | None,
    ) -> bytes:
        fields: dict[str, Any] = {
            "decision_id": decision_id,
            "timestamp": timestamp,
            "arm": arm,
            "propensity": propensity,
            "features": features,
            "cohort": cohort,
        }
        if learned_arm is not None:
            fields["learned_arm"] = learned_arm
            if learned_propensity is not None:
                fields["learned_propensity"] = learned_propensity
        return self.head + to_json(fields)[1:]


#: Decision ids come from a generator seeded from the OS (reseeded in a forked child):
#: ``os.urandom`` is a system call that releases the GIL on every request.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_decision_id() -> str:
    """32 random hex characters (128 bits from a generator seeded with OS randomness)."""
    return _ids.randbytes(16).hex()


class ProviderSelector:
    """Pick a provider per request with a contextual bandit; log decisions and outcomes.

    With the policy disabled (kill switch) or parameters older than its
    ``max_staleness_seconds``, the policy's ``fallback_arm`` is served (cohort
    ``baseline``); ``SafeProviderSelector`` adds a baseline object and the rollout.

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
        reader: PolicyReader | LocalPolicy | None = None,
        producer: EventProducer | None = None,
        topics: Topics | None = None,
        warm_start: int = 1,
        max_pending: int = 100_000,
        owns_reader: bool = False,
    ) -> None:
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._feature_fn: Callable[[Mapping[str, Any]], Sequence[float]] = (
            feature_fn or default_features
        )
        self._custom_features = feature_fn is not None
        self.producer = producer
        self.topics = topics or Topics()
        self._decisions_topic = self.topics.decisions
        self._outcomes_topic = self.topics.outcomes
        self.warm_start = int(warm_start)
        self.max_pending = int(max_pending)
        self._owns_reader = owns_reader
        self.providers = tuple(providers) if providers else None
        if isinstance(algorithm, str):
            algorithm = AlgorithmConfig(name=algorithm)
        self._local_args = (policy, reward_spec, algorithm)
        if reader is None:
            self.streaming = False
            self.providers = self.providers or DEFAULT_PROVIDERS
            d = n_features or (None if self._custom_features else N_DEFAULT_FEATURES)
            self.source: PolicyReader | LocalPolicy | None = self._make_local(d) if d else None
        else:
            self.streaming = isinstance(reader, PolicyReader)
            self.source = reader
        self.policy = policy if self.source is None else self._policy_name()
        self._encoder: _DecisionEncoder | None = None
        self._untried: tuple[Snapshot | None, tuple[int, ...]] = (None, ())
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._by_request: dict[Any, deque[str]] = {}
        self._track_all = not self.streaming  # in-process learning needs every decision
        # counters
        self.decisions = 0
        self.unlogged = 0
        self.unmatched_updates = 0
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
        store = RedisPolicyStore.from_url(
            settings.redis_url, prefix=settings.key_prefix, **settings.redis_kwargs()
        )
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

    def _make_local(self, n_features: int) -> LocalPolicy:
        policy, reward_spec, algorithm = self._local_args
        config = make_config(
            name=policy,
            arms=list(self.providers or DEFAULT_PROVIDERS),
            n_features=n_features,
            algorithm=algorithm or IN_PROCESS_ALGORITHM,
            reward=reward_spec or RewardSpec(),
            **self._local_config_overrides(),
        )
        return LocalPolicy(config)

    def _local_config_overrides(self) -> dict[str, Any]:
        return {"rollout_fraction": 1.0}

    def _policy_name(self) -> str:
        src = self.source
        if isinstance(src, PolicyReader):
            return src.policy
        return src.config.name if src is not None else self._local_args[0]

    def close(self, timeout: float = 5.0) -> None:
        """Flush the producer (up to ``timeout`` s) and stop the reader if this object made it."""
        if self.producer is not None:
            self.producer.close(timeout)
        if self._owns_reader and self.source is not None:
            self.source.close()

    def __enter__(self) -> ProviderSelector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- features ------------------------------------------------------------------------------
    def features(self, request: Mapping[str, Any], n_features: int | None = None) -> tuple:
        """The feature vector of ``request``, checked against the policy's ``n_features``."""
        if n_features is None:
            src = self._source(request)
            n_features = src.view.snapshot.d if src is not None and src.view else None
        values = self._feature_fn(request)
        if n_features is None:
            return check_vector(values, len(values))
        return check_vector(values, n_features)

    def _source(self, request: Mapping[str, Any] | None = None) -> PolicyReader | LocalPolicy:
        src = self.source
        if src is None:  # in-process with a user feature function: size known at first use
            with self._lock:
                if self.source is None:
                    values = self._feature_fn(request if request is not None else {})
                    self.source = self._make_local(len(check_vector(values, len(values))))
                    self.policy = self._policy_name()
            src = self.source
        return src

    # -- selection -----------------------------------------------------------------------------
    def select(self, request: Mapping[str, Any], request_key: str | None = None) -> Decision:
        """Choose a provider for ``request`` and publish the decision (never blocks)."""
        view = self._source(request).view
        if view is None:
            return self._unavailable()
        snap = view.snapshot
        x = check_vector(self._feature_fn(request), snap.d)
        config = view.config
        if not config.enabled or self.source.staleness() > config.max_staleness_seconds:
            # kill switch, or parameters too old: the policy's fallback arm, logged as baseline
            self.fallbacks += 1
            return self._decide(view, x, config.fallback_arm, 1.0, "baseline", None, None)
        arm, propensity, _ = self._learned(view, x)
        return self._decide(view, x, arm, propensity, "rl", None, None)

    def select_provider(self, request: Mapping[str, Any]) -> str:
        """Original API: the provider's name. Pair it with ``update_from_response``."""
        decision = self.select(request)
        if decision.logged:
            self._remember(decision, index_key=(decision.features, decision.provider))
        return decision.provider

    def _learned(self, view: ReaderView, x: tuple[float, ...]) -> tuple[str, float, Any]:
        """The learned policy's choice: (arm, its probability, distribution over all arms)."""
        snap = view.snapshot
        cached_snap, untried = self._untried
        if cached_snap is not snap:
            n = snap.n.tolist()
            untried = tuple(i for i, v in enumerate(n) if v < self.warm_start)
            self._untried = (snap, untried)
        if untried:
            k = len(untried)
            i = untried[int(self._rng.random() * k)] if k > 1 else untried[0]
            probs = [1.0 / k if j in untried else 0.0 for j in range(len(snap.arms))]
            return snap.arms[i], 1.0 / k, probs
        i, propensity, probs = view.algorithm.choose(snap, np.asarray(x), self._rng)
        return snap.arms[i], propensity, probs

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
            self._remember(decision)
        return decision

    def _unavailable(self) -> Decision:
        """Nothing loaded yet (Redis unreachable since start): serve the first provider."""
        self.fallbacks += 1
        self.unlogged += 1
        if not self.providers:
            raise NoSnapshotError(
                f"policy {self.policy!r} is not loaded (Redis unreachable or policy missing) and "
                "no fallback is known; pass providers=[...] to connect() so one can be served"
            )
        return Decision(new_decision_id(), self.providers[0], 1.0, "baseline", 0, (), None, False)

    # -- outcomes ------------------------------------------------------------------------------
    def _remember(self, decision: Decision, index_key: Any = None) -> None:
        with self._lock:
            pending = self._pending.get(decision.decision_id)
            if pending is None:
                pending = _Pending(decision.provider, decision.features)
                self._pending[decision.decision_id] = pending
            if index_key is not None:
                pending.index_key = index_key
                self._by_request.setdefault(index_key, deque()).append(decision.decision_id)
            while len(self._pending) > self.max_pending:
                old_id, old = self._pending.popitem(last=False)
                self._unindex(old_id, old)

    def _unindex(self, decision_id: str, pending: _Pending) -> None:
        q = self._by_request.get(pending.index_key)
        if q is None:
            return
        try:
            q.remove(decision_id)
        except ValueError:
            pass
        if not q:
            del self._by_request[pending.index_key]

    def update_from_response(
        self, request: Mapping[str, Any], provider: str, metrics: Mapping[str, Any]
    ) -> bool:
        """Original API: report ``metrics`` (quality, cost, latency, optional error) for the
        oldest unreported ``select_provider`` decision that served ``provider`` for a request
        with the same features; that outcome is final.

        In-process, when no such decision is pending the observation is learnt directly.
        In streaming mode it cannot be attributed: it is counted (``unmatched_updates``)
        and False is returned.
        """
        x = self.features(request)
        key = (x, provider)
        decision_id = None
        with self._lock:
            q = self._by_request.get(key)
            while q:
                candidate = q.popleft()
                if candidate in self._pending:
                    decision_id = candidate
                    break
            if q is not None and not q:
                del self._by_request[key]
        error = metrics.get("error")
        if decision_id is not None:
            return self.report_outcome(
                decision_id,
                quality=metrics.get("quality"),
                cost=metrics.get("cost"),
                latency=metrics.get("latency"),
                error=str(error) if error else None,
                provider=provider,
                final=True,
            )
        if isinstance(self.source, LocalPolicy):
            spec = self.source.config.reward
            reward = spec.reward(
                metrics.get("quality"), metrics.get("cost"), metrics.get("latency"), bool(error)
            )
            self.source.learn(provider, x, reward)
            return True
        self.unmatched_updates += 1
        return False

    def report_outcome(
        self,
        decision_id: str,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        error: str | None = None,
        fallback_provider: str | None = None,
        final: bool = False,
        *,
        provider: str | None = None,
    ) -> bool:
        """Report (part of) what happened to a decision.

        ``quality`` is in [0, 1]; ``cost`` and ``latency`` in [0, 1] unless the
        reward spec has caps (then dollars and milliseconds). ``error`` names the
        failure of the chosen provider; ``fallback_provider`` the one that served
        instead — the reward then charges the error to the chosen provider and never
        credits it with the fallback's result. Streaming: publishes an
        ``OutcomeEvent``. In-process: learns once the parts are complete (all of the
        reward spec's required components, ``final``, or an error). Returns whether
        the report was accepted; raises ``ValueError`` for values out of range.
        """
        with self._lock:
            pending = self._pending.get(decision_id)
            if final or error:
                pending = self._pending.pop(decision_id, None)
                if pending is not None:
                    self._unindex(decision_id, pending)
        arm = provider or (pending.arm if pending is not None else None)
        try:
            event = OutcomeEvent(
                decision_id=decision_id,
                policy=self.policy,
                timestamp=time.time(),
                arm=arm,
                quality=quality,
                cost=cost,
                latency=latency,
                error=error,
                fallback_arm=fallback_provider,
                final=final,
            )
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ValueError(f"invalid outcome for decision {decision_id}: {detail}") from None
        if self.producer is not None:
            self.producer.send(self._outcomes_topic, decision_id, event.to_bytes())
        if isinstance(self.source, LocalPolicy):
            return self._learn_local(decision_id, pending, event)
        return True

    def _learn_local(self, decision_id: str, pending: _Pending | None, event: OutcomeEvent) -> bool:
        if pending is None:
            self.unmatched_updates += 1
            return False
        parts = pending.parts
        for name in ("quality", "cost", "latency"):
            value = getattr(event, name)
            if value is not None:
                parts[name] = value
        spec = self.source.config.reward
        done = event.final or event.error is not None or all(r in parts for r in spec.required)
        if not done:
            return True
        with self._lock:
            self._pending.pop(decision_id, None)
            self._unindex(decision_id, pending)
        if event.error is not None:
            reward = spec.reward(error=True)
        else:
            reward = spec.reward(parts.get("quality"), parts.get("cost"), parts.get("latency"))
        self.source.learn(pending.arm, pending.features, reward)
        return True

    # -- introspection -------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Selector counters, plus the producer's when there is one."""
        out: dict[str, Any] = {
            "decisions": self.decisions,
            "unlogged": self.unlogged,
            "fallbacks": self.fallbacks,
            "unmatched_updates": self.unmatched_updates,
            "pending": len(self._pending),
        }
        if self.producer is not None:
            out.update({f"producer_{k}": v for k, v in self.producer.metrics().items()})
        return out
