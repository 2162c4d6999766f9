"""``BanditRoutingStrategy``: a ``litellm.Router`` routing plugin that asks a learned policy.

One policy per model group, named ``policy_prefix + group`` (characters outside
``[A-Za-z0-9_.-]`` become ``_``); its arms are the group's deployments by
``model_info.id``. For each request the group's ``ProviderSelector`` chooses a deployment
from the request's features (``openai_features`` unless ``feature_fn`` is given) and a
sticky key (``user``, else the ``cohort_header`` of a proxy request, else the metadata's
``user_api_key_user_id``); the decision id goes into the request's ``metadata``
(``rlc_decision_id``), which the SDK caller's own dict receives and which the
``OutcomeLogger`` reads.

A later pick for the same request (LiteLLM retrying, or falling back to another group)
makes no decision: it serves a deployment the request has not failed on yet, chosen
uniformly. A group with one deployment, or a request for a specific deployment, is
served as asked and not logged. Routing never raises because of rl-commons: any error
of the selector serves a uniformly chosen deployment and is counted (``errors``); a
selector that could not be made is tried again after ``RETRY_SECONDS``.

Events go out through one Kafka producer per process whose linger is ``PRODUCER_LINGER_MS``
(50 ms) unless the settings set ``producer_linger_ms`` (``RL_COMMONS_PRODUCER_LINGER_MS``):
librdkafka's thread wakes about three times per produce request (first message of a
partition, linger timer, response), and with a 5 ms linger every request of a proxy carries
about one event; each wake-up lands on the host that runs LiteLLM's event loop
(``bench_litellm``: 110–170 µs per event on the p50 of ``acompletion`` at 5 ms, within
noise at 50 ms). The cost: events reach the learning loop up to 50 ms later.

Selectors are made lazily, one per group, in the process that routes: after a fork
(gunicorn/uvicorn workers) the child drops what its parent made and builds its own
selectors and Kafka producer on its first request (``os.register_at_fork``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policy_store import PolicyConfig, RedisPolicyStore, RewardSpec, Settings, make_config

from ... import EventProducer, ProviderSelector, SafeProviderSelector
from ._features import N_OPENAI_FEATURES, openai_features
from ._ledger import DECISION_ARM, DECISION_GROUP, DECISION_ID, Ledger

log = logging.getLogger(__name__)

SelectorFactory = Callable[[str, Sequence[str]], ProviderSelector]
#: after a selector could not be made (Redis down at start …), route uniformly this long
RETRY_SECONDS = 5.0
#: the producer's linger (ms) unless the settings set one (see the module docstring)
PRODUCER_LINGER_MS = 50.0
_BAD_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


def policy_name(prefix: str, model_group: str) -> str:
    """The policy of a model group.

    >>> policy_name("litellm.", "gpt-4o/eu")
    'litellm.gpt-4o_eu'
    """
    return _BAD_NAME.sub("_", prefix + model_group)[:100]


def _deployment_id(deployment: Mapping[str, Any]) -> str | None:
    info = deployment.get("model_info")
    value = info.get("id") if isinstance(info, Mapping) else None
    return str(value) if value is not None else None


def producer_overrides(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of the plugin's producer beyond ``settings``: the linger, unless
    ``settings`` were given one (explicitly or from the environment).

    >>> producer_overrides(Settings())
    {'linger.ms': 50.0}
    >>> producer_overrides(Settings(producer_linger_ms=5))
    {}
    """
    if "producer_linger_ms" in settings.model_fields_set:
        return {}
    return {"linger.ms": PRODUCER_LINGER_MS}


class BanditRoutingStrategy:
    """Route each request of a ``litellm.Router`` to the deployment a learned policy picks.

    ``settings`` (streaming: parameters from Redis, events to Kafka) or
    ``selector_factory(policy, arms) -> ProviderSelector`` (anything else, e.g. an
    in-process selector in tests); with neither, each group learns in-process in this
    process only. ``safe=True`` uses ``SafeProviderSelector`` (rollout fraction, shadow
    mode and kill switch from the policy config). With ``create_policies``, a group's policy
    that is missing from Redis is created (``policy_config``) when its selector is made.
    Register it with ``attach(router)``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        policy_prefix: str = "litellm.",
        feature_fn: Callable[[Mapping[str, Any]], Sequence[float]] | None = None,
        selector_factory: SelectorFactory | None = None,
        safe: bool = True,
        cohort_header: str = "x-rlc-cohort-key",
        reward_spec: RewardSpec | None = None,
        create_policies: bool = False,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.policy_prefix = policy_prefix
        self.feature_fn = feature_fn or openai_features
        self.safe = safe
        self.cohort_header = cohort_header.lower()
        self.reward_spec = reward_spec
        self.create_policies = create_policies
        self.router: Any = None
        self.ledger = Ledger()
        self._factory = selector_factory or self._default_factory
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._selectors: dict[str, ProviderSelector] = {}
        self._deployments: dict[str, tuple[int, dict[str, Any]]] = {}
        self._retry_at: dict[str, float] = {}  # group -> when to try making its selector again
        self._producer: EventProducer | None = None
        self.errors = 0
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) and s._forget_parent())

    # -- wiring --------------------------------------------------------------------------------
    def attach(self, router: Any) -> BanditRoutingStrategy:
        """Make this the routing strategy of ``router`` (``register_plugin``, or
        ``set_custom_routing_strategy`` on LiteLLM releases that lack it)."""
        self.router = router
        register = getattr(router, "register_plugin", None) or router.set_custom_routing_strategy
        register(self)
        return self

    def _default_factory(self, policy: str, arms: Sequence[str]) -> ProviderSelector:
        cls = SafeProviderSelector if self.safe else ProviderSelector
        if self.settings is None:  # in-process: this process learns alone
            return cls(
                providers=arms,
                feature_fn=self.feature_fn,
                reward_spec=self.reward_spec,
                seed=self._seed,
                policy=policy,
                **({"exploration_rate": 1.0} if self.safe else {}),
            )
        if self._producer is None:
            self._producer = EventProducer(self.settings, config=producer_overrides(self.settings))
        if self.create_policies:
            store = RedisPolicyStore.from_settings(self.settings)
            store.create(self._config(policy, arms), exist_ok=True)
        return cls.connect(
            policy,
            self.settings,
            feature_fn=self.feature_fn,
            seed=self._seed,
            providers=arms,
            producer=self._producer,
        )

    def _forget_parent(self) -> None:
        """In a forked child: the parent's selectors, reader threads and producer are not ours."""
        self._lock = threading.Lock()
        self._selectors = {}
        self._producer = None
        self.ledger = Ledger(self.ledger.max_size)

    def selector(self, model_group: str, arms: Sequence[str] | None = None) -> ProviderSelector:
        """The selector of ``model_group`` (made on first use with ``arms``)."""
        selector = self._selectors.get(model_group)
        if selector is None:
            with self._lock:
                selector = self._selectors.get(model_group)
                if selector is None:
                    if arms is None:
                        arms = tuple(self._group(model_group))
                    policy = policy_name(self.policy_prefix, model_group)
                    selector = self._factory(policy, tuple(arms))
                    self._selectors[model_group] = selector
        return selector

    def policy_config(
        self, model_group: str, arms: Sequence[str] | None = None, **fields: Any
    ) -> PolicyConfig:
        """A config for ``model_group``'s policy: its deployments as arms, the default
        features' size, ``reward_spec`` (give it ``cost_cap`` in dollars and
        ``latency_cap_ms``), and any other ``PolicyConfig`` field. Create it once in Redis
        (``store.create(config, exist_ok=True)``) before routing in streaming mode."""
        if arms is None:
            arms = tuple(self._group(model_group))
        return self._config(policy_name(self.policy_prefix, model_group), arms, **fields)

    def _config(self, policy: str, arms: Sequence[str], **fields: Any) -> PolicyConfig:
        fields.setdefault("n_features", N_OPENAI_FEATURES)
        if self.reward_spec is not None:
            fields.setdefault("reward", self.reward_spec)
        return make_config(name=policy, arms=list(arms), **fields)

    def close(self, timeout: float = 5.0) -> None:
        """Flush the events and stop the selectors' readers."""
        with self._lock:
            selectors, self._selectors = list(self._selectors.values()), {}
        for selector in selectors:
            selector.close(timeout)

    # -- the router's calls --------------------------------------------------------------------
    def _group(self, model: str) -> dict[str, Any]:
        """``model``'s deployments by id, cached until the router's registry changes."""
        router = self.router
        registry = getattr(router, "registry", None)
        if registry is None:  # older releases
            return {_deployment_id(d): d for d in router.get_model_list(model_name=model) or ()}
        reg = registry()
        cached = self._deployments.get(model)
        if cached is not None and cached[0] == reg.version:
            return cached[1]
        found = {_deployment_id(d): d for d in reg.deployments(model)}
        found.pop(None, None)
        self._deployments[model] = (reg.version, found)
        return found

    def _pick(
        self,
        model: str,
        messages: Any,
        specific_deployment: bool | None,
        request_kwargs: Mapping[str, Any] | None,
    ) -> Any:
        group = self._group(model)
        if not group:
            return None
        if len(group) == 1 or specific_deployment:
            return next(iter(group.values()))
        kwargs = request_kwargs or {}
        md = kwargs.get("metadata")
        if not isinstance(md, dict):
            md = kwargs.get("litellm_metadata")
        if isinstance(md, dict) and DECISION_ID in md:
            return self._retry_pick(group, md)
        try:
            selector = self._selectors.get(model)
            if selector is None:
                if time.monotonic() < self._retry_at.get(model, 0.0):
                    return self._uniform(group)
                try:
                    selector = self.selector(model, tuple(group))
                except Exception:
                    self._retry_at[model] = time.monotonic() + RETRY_SECONDS
                    raise
            request = kwargs if "messages" in kwargs else {**kwargs, "messages": messages}
            decision = selector.select(request, request_key=self._request_key(kwargs, md))
        except Exception as exc:  # never fail a request because of the policy
            self.errors += 1
            log.warning("routing %s without the policy: %s", model, exc)
            return self._uniform(group)
        deployment = group.get(decision.provider)
        if deployment is None:  # the policy's arms and the group disagree
            self.errors += 1
            return self._uniform(group)
        if decision.logged and isinstance(md, dict):
            md[DECISION_ID] = decision.decision_id
            md[DECISION_ARM] = decision.provider
            md[DECISION_GROUP] = model
        return deployment

    def _retry_pick(self, group: dict[str, Any], md: Mapping[str, Any]) -> Any:
        """A later attempt of a decided request: a deployment it has not failed on yet."""
        failed = {p.get("deployment_id") for p in md.get("previous_models") or () if p}
        failed.add(md.get(DECISION_ARM))
        others = [d for i, d in group.items() if i not in failed]
        return self._uniform(group) if not others else others[self._rng.randrange(len(others))]

    def _uniform(self, group: Mapping[str, Any]) -> Any:
        values = list(group.values())
        return values[self._rng.randrange(len(values))]

    def _request_key(self, kwargs: Mapping[str, Any], md: Mapping[str, Any] | None) -> str | None:
        user = kwargs.get("user")
        if user:
            return str(user)
        proxy_request = kwargs.get("proxy_server_request")
        if isinstance(proxy_request, Mapping):
            headers = proxy_request.get("headers")
            if isinstance(headers, Mapping):
                value = headers.get(self.cohort_header)
                if value:
                    return str(value)
        if md:
            value = md.get("user_api_key_end_user_id") or md.get("user_api_key_user_id")
            if value:
                return str(value)
        return None

    async def async_get_available_deployment(self, *args: Any, **kwargs: Any) -> Any:
        """LiteLLM's async pick: the sync pick (it does no I/O), same arguments."""
        return self.get_available_deployment(*args, **kwargs)

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """LiteLLM's pick (``router.completion``; ``acompletion`` through the async
        method): the deployment, an entry of the router's model list."""
        return self._pick(model, messages, specific_deployment, request_kwargs)

    # -- outcomes ------------------------------------------------------------------------------
    def selector_of(self, model_group: str | None) -> ProviderSelector | None:
        """The selector already made for ``model_group`` (None if none)."""
        return self._selectors.get(model_group) if model_group else None

    def report_feedback(
        self,
        decision_id: str,
        quality: float | None = None,
        *,
        model_group: str | None = None,
        **parts: Any,
    ) -> bool:
        """Report a late part (``quality``, ``final`` …) of a decision through a selector
        of this process (``model_group``'s when given). False if no selector exists yet."""
        selector = self.selector_of(model_group) or next(iter(self._selectors.values()), None)
        if selector is None:
            return False
        parts.setdefault("final", True)
        return selector.report_outcome(decision_id, quality=quality, **parts)

    def metrics(self) -> dict[str, Any]:
        """Per group, its selector's counters; plus this plugin's ``errors``."""
        out: dict[str, Any] = {"errors": self.errors}
        for group, selector in list(self._selectors.items()):
            out[group] = selector.metrics()
        return out
