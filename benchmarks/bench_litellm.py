"""Overhead of the rl-commons routing plugin in ``litellm.Router.acompletion``.

Routers over the same two ``mock_response`` deployments (no network), timed in one run:
LiteLLM's built-in ``simple-shuffle`` and ``latency-based-routing``, a random-pick plugin
(LiteLLM's plugin path alone), and ``BanditRoutingStrategy`` in streaming mode (parameters
from Redis through the reader, decisions enqueued to Kafka: the embedded broker and Redis
unless ``RL_COMMONS_KAFKA_BOOTSTRAP`` and ``RL_COMMONS_REDIS_URL`` are set) without and with
the ``OutcomeLogger`` callback, and once more with a 5 ms producer linger instead of the
plugin's 50 ms. All routers run in one event loop after a warm-up; each
``await router.acompletion(...)`` is timed alone; the routers take turns in small blocks
(10 calls by default) in a rotating order, only the row's own callbacks registered, their
tasks drained after every block, and a full garbage collection between rounds (as
``_timing.measure`` does for synchronous calls). The embedded services run at idle
priority (``idle_services``; ``--no-idle-services`` keeps them at normal priority). A
mocked call takes milliseconds and the machine's slow phases move every router by more
than the tens of µs sought, so besides p50, p99 and p99.9 in µs per router the table gives
the p50 difference to ``simple-shuffle`` per round (same phase of the machine): its median
over rounds and interquartile range.

    python benchmarks/bench_litellm.py                      # 3,000 timed calls per router
    python benchmarks/bench_litellm.py --iterations 20000 --out /tmp/litellm.md
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download

from _output import command_line, emit  # noqa: E402
from bench_proxy import bench_settings, services  # noqa: E402

from policy_store import RedisPolicyStore, RewardSpec, Settings  # noqa: E402
from producers import Topics, create_topics  # noqa: E402

MESSAGES = [
    [{"role": "user", "content": "Hi! How are you today?"}],
    [{"role": "user", "content": "Fix this:\n```python\ndef add(a, b):\n    return a - b\n```"}],
    [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "List three colours." * 20},
    ],
]


def model_list() -> list[dict]:
    from producers.integrations.litellm import mock_deployment

    prices = (("cheap", 1e-6), ("strong", 1e-4))
    return [mock_deployment("chat", ident, cost_per_token=price) for ident, price in prices]


def idle_services() -> list[int]:
    """Put the services this process started (embedded broker, Redis) at idle priority.

    They stand in for other hosts: at ``SCHED_IDLE`` they only take CPU time the benchmark
    leaves, so the broker's work on the plugin's events is not charged to the plugin's rows
    (on 2 CPUs it otherwise preempts the event loop). Returns their pids."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            os.sched_setscheduler(int(pid), os.SCHED_IDLE, os.sched_param(0))
            pids.append(int(pid))
    return pids


#: the lists LiteLLM promotes ``litellm.callbacks`` into on a call (and never empties)
CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def use_callbacks(callbacks: list) -> None:
    """Make ``callbacks`` the only callbacks: LiteLLM copies ``litellm.callbacks`` into its
    success and failure lists on the first call, so restoring ``litellm.callbacks`` alone
    would leave a callback running for every later router."""
    import litellm

    for name in CALLBACK_LISTS:
        getattr(litellm, name)[:] = []
    litellm.callbacks[:] = callbacks


def _lives_on(task: asyncio.Task) -> bool:
    """LiteLLM's logging worker: a task that runs as long as the loop (never awaited)."""
    return getattr(task.get_coro(), "__qualname__", "").endswith("_worker_loop")


async def drain() -> None:
    """Let the callbacks' tasks (and LiteLLM's logging threads) finish outside any timed call."""
    here = asyncio.current_task()
    for _ in range(100):
        await asyncio.sleep(0)  # the logging worker picks up what is queued
        pending = [t for t in asyncio.all_tasks() if t is not here and not t.done()]
        pending = [t for t in pending if not _lives_on(t)]
        if not pending:
            break
        await asyncio.wait(pending, timeout=0.5)
    await asyncio.sleep(0.002)


async def timed(
    routers: dict, iterations: int, block: int = 10, warmup: int = 300
) -> dict[str, list[np.ndarray]]:
    """Nanoseconds of each ``acompletion`` call, by router name, one array per block.

    All routers run in this one event loop and take turns block by block (``block`` calls
    each, in an order that rotates every round); a full garbage collection runs between
    rounds, never inside a timed call, so block ``b`` of every router saw the same phase of
    the machine and per-block differences pair them.
    """
    clock = time.perf_counter_ns
    items = list(routers.items())
    for _name, (router, callbacks) in items:  # warm-up: imports, caches, connections
        use_callbacks(callbacks)
        for i in range(warmup):
            await router.acompletion(model="chat", messages=MESSAGES[i % 3], user=f"u{i}")
        await drain()
    times: dict[str, list[np.ndarray]] = {name: [] for name in routers}
    gc.collect()
    gc.disable()
    try:
        for b in range(max(1, iterations // block)):
            k = b % len(items)
            for name, (router, callbacks) in items[k:] + items[:k]:
                use_callbacks(callbacks)  # only the row's own callback runs
                out = np.empty(block, dtype=np.int64)
                for i in range(block):
                    j = b * block + i
                    messages = MESSAGES[j % 3]
                    t0 = clock()
                    await router.acompletion(model="chat", messages=messages, user=f"u{j}")
                    out[i] = clock() - t0
                    await asyncio.sleep(0)  # the callbacks' tasks run between calls
                times[name].append(out)
                await drain()
            gc.collect()
    finally:
        gc.enable()
    return times


def table(times: dict[str, list[np.ndarray]], base: str = "LiteLLM simple-shuffle") -> str:
    """p50/p99/p99.9 per router (µs) and the p50 difference to ``base`` with its spread.

    The difference column is the median over blocks of (this router's block p50 − the base's
    block p50 in the same round) and the interquartile range of those per-block differences;
    the pooled p50 difference is shown too.
    """
    base_p50 = np.array([np.median(t) for t in times[base]])
    pooled_base = np.percentile(np.concatenate(times[base]), 50)
    lines = [
        "| router | p50 µs | p99 µs | p99.9 µs | p50 − simple-shuffle µs (pooled) "
        "| per-block p50 − simple-shuffle µs: median [IQR] |",
        "|---|---|---|---|---|---|",
    ]
    for name, blocks in times.items():
        p50, p99, p999 = np.percentile(np.concatenate(blocks), [50, 99, 99.9])
        diff = (np.array([np.median(t) for t in blocks]) - base_p50) / 1000.0
        q25, med, q75 = np.percentile(diff, [25, 50, 75])
        lines.append(
            f"| {name} | {p50 / 1000:.1f} | {p99 / 1000:.1f} | {p999 / 1000:.1f} "
            f"| {(p50 - pooled_base) / 1000:+.1f} | {med:+.1f} [{q25:+.1f}, {q75:+.1f}] |"
        )
    return "\n".join(lines)


class RandomPick:
    """A routing plugin that picks uniformly: what LiteLLM's plugin path costs by itself."""

    def __init__(self, router) -> None:
        self.deployments = list(router.registry().deployments("chat"))
        self.rng = np.random.default_rng(0)

    def get_available_deployment(
        self, model, messages=None, input=None, specific_deployment=False, request_kwargs=None
    ):  # noqa: E501
        return self.deployments[int(self.rng.integers(len(self.deployments)))]

    async def async_get_available_deployment(
        self, model, messages=None, input=None, specific_deployment=False, request_kwargs=None
    ):  # noqa: E501
        return self.get_available_deployment(model)


def pick_alone(strategy, iterations: int) -> np.ndarray:
    """Nanoseconds of the plugin's own pick (features, select, decision event), no LiteLLM."""
    clock = time.perf_counter_ns
    out = np.empty(iterations, dtype=np.int64)
    for i in range(iterations):
        kwargs = {"messages": MESSAGES[i % 3], "user": f"u{i}", "metadata": {}}
        t0 = clock()
        strategy.get_available_deployment("chat", kwargs["messages"], request_kwargs=kwargs)
        out[i] = clock() - t0
    return out


def build(settings: Settings):
    import litellm

    from producers.integrations.litellm import BanditRoutingStrategy, OutcomeLogger

    spec = RewardSpec(cost_cap=0.003, latency_cap_ms=2000.0)
    short = settings.model_copy(update={"producer_linger_ms": 5.0})
    plain = BanditRoutingStrategy(settings, reward_spec=spec, policy_prefix="bench.", seed=0)
    logged = BanditRoutingStrategy(settings, reward_spec=spec, policy_prefix="bench2.", seed=1)
    lingers = BanditRoutingStrategy(short, reward_spec=spec, policy_prefix="bench3.", seed=2)
    ours, ours_logged, ours_short = (litellm.Router(model_list=model_list()) for _ in range(3))
    plain.attach(ours)
    logged.attach(ours_logged)
    lingers.attach(ours_short)
    shuffled = litellm.Router(model_list=model_list())
    shuffled.register_plugin(RandomPick(shuffled))
    routers = {
        "LiteLLM simple-shuffle": (
            litellm.Router(model_list=model_list(), routing_strategy="simple-shuffle"),
            [],
        ),
        "LiteLLM latency-based-routing": (
            litellm.Router(model_list=model_list(), routing_strategy="latency-based-routing"),
            [],
        ),
        "random-pick plugin (LiteLLM's plugin path alone)": (shuffled, []),
        "rl-commons plugin (select + decision event)": (ours, []),
        "rl-commons plugin + OutcomeLogger": (ours_logged, [OutcomeLogger(logged)]),
        "rl-commons plugin, 5 ms linger": (ours_short, []),
    }
    store = RedisPolicyStore.from_settings(settings)
    for strategy in (plain, logged, lingers):
        store.create(strategy.policy_config("chat", rollout_fraction=1.0), exist_ok=True)
        selector = strategy.selector("chat")
        deadline = time.monotonic() + 10
        while selector.config is None and time.monotonic() < deadline:
            time.sleep(0.05)
    return routers, (plain, logged, lingers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iterations", type=int, default=3_000, help="timed calls per router")
    ap.add_argument("--block", type=int, default=10, help="calls per router per turn")
    ap.add_argument(
        "--no-idle-services",
        action="store_true",
        help="keep the embedded broker and Redis at normal priority",
    )
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)
    import litellm

    bootstrap, redis_url, stop = services()
    idle = [] if args.no_idle_services else idle_services()
    strategies: tuple = ()
    saved = list(litellm.callbacks)
    try:
        settings = bench_settings(bootstrap, redis_url)
        create_topics(settings, Topics(settings.topic_prefix), partitions=4)
        routers, strategies = build(settings)
        times = asyncio.run(timed(routers, args.iterations, args.block))
        alone = np.percentile(pick_alone(strategies[0], args.iterations), [50, 99]) / 1000.0
        metrics = {s.policy_prefix: s.metrics() for s in strategies}
    finally:
        use_callbacks(saved)
        for s in strategies:
            s.close()
        stop()
    errors = sum(m["errors"] for m in metrics.values())
    text = (
        f"Command: `{command_line('bench_litellm.py', argv)}`  \n"
        f"litellm {version('litellm')}, {args.iterations} timed calls per router in blocks "
        f"of {args.block}, "
        f"{os.cpu_count()} CPUs; plugin errors {errors}; "
        f"{'embedded services at idle priority' if idle else 'services at normal priority'}. "
        "The plugin's pick alone (features, "
        f"select, decision event; no LiteLLM): p50 {alone[0]:.1f} µs, p99 {alone[1]:.1f} µs."
        "\n\n" + table(times) + "\n"
    )
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
