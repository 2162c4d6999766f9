"""Simulated LLM providers and request traffic — the only mocks in rl-commons.

A small, seeded world in which learning which provider to call is worth it:

* **Quality** depends on the provider *and the task type*: gpt-4 is clearly best
  at code, claude-3 at summarising long documents, and on classification and
  chat the cheap llama is about as good as the others.
* **Cost** is tokens × price: ``prompt_tokens/1000 · price_in +
  output_tokens/1000 · price_out`` dollars, at list-like prices.
* **Latency** grows with the length of the answer: ``ttft_ms + output_tokens ·
  ms_per_token`` milliseconds, with log-normal noise.
* Everything is noisy and drawn from one ``numpy.random.Generator``, so a seed
  reproduces a run exactly.

``PREMIUM_PROFILES`` is a second world, where gpt-4 is the best provider at every task
type and the most expensive (the world of ``rl-commons demo --objective …``);
``WORLDS`` names both.

``SimulatedProviders.change`` alters a provider mid-run (it gets worse, cheaper or
slower) to show adaptation. ``SimulatedProviders.call`` is an ``async`` function
with the shape ``LLMClient`` expects of a provider call (``call_fn(provider,
prompt, **kwargs)``) and ``SimulatedProviders.clock`` a clock in simulated
seconds, so that ``LLMClient`` measures the simulated latency without waiting
for it; ``respond`` is the same call, synchronously. ``RequestGenerator`` draws
requests: task type, prompt and answer lengths, priority and a user id (for sticky
rollout cohorts).

>>> world = SimulatedProviders(seed=1)
>>> req = RequestGenerator(seed=2).next()
>>> resp = world.respond("gpt-4", req)
>>> 0.0 <= resp.quality <= 1.0 and resp.cost > 0 and resp.latency_ms > 0
True
>>> best_by_task(demo_reward_spec())["code"]
'gpt-4'
"""

from ._providers import (
    DEFAULT_PROFILES,
    PREMIUM_PROFILES,
    WORLDS,
    ProviderError,
    ProviderProfile,
    SimResponse,
    SimulatedProviders,
)
from ._requests import (
    FEATURE_NAMES,
    PRIORITIES,
    PRIORITY_MIX,
    TASK_MIX,
    TASK_TOKENS,
    TASK_TYPES,
    RequestGenerator,
    SimRequest,
    request_features,
)
from ._rewards import best_by_task, demo_reward_spec, expected_reward_table

__all__ = [
    "DEFAULT_PROFILES",
    "FEATURE_NAMES",
    "PRIORITIES",
    "PREMIUM_PROFILES",
    "PRIORITY_MIX",
    "TASK_MIX",
    "TASK_TOKENS",
    "TASK_TYPES",
    "WORLDS",
    "ProviderError",
    "ProviderProfile",
    "RequestGenerator",
    "SimRequest",
    "SimResponse",
    "SimulatedProviders",
    "best_by_task",
    "demo_reward_spec",
    "expected_reward_table",
    "request_features",
]
