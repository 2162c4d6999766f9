"""Proxy hot path: ``select`` + decision event enqueue, streaming mode, against VW and MABWiser.

Setting: 5 providers, parameters learnt from 2,000 simulated rewards (the same
data for every library), held in Redis and cached by the selector's
``PolicyReader`` (its refresh thread runs, as in a proxy). Every ``select``
builds the DecisionEvent bytes and enqueues them on the confluent-kafka
producer of a real broker (the embedded one, or ``RL_COMMONS_KAFKA_BOOTSTRAP``
/ ``RL_COMMONS_REDIS_URL`` when both are set). Peers are timed in the same run
on the same contexts: VW ``--cb_explore_adf --squarecb`` predict + sampling and
MABWiser ``LinUCB`` predict — selection only, no logging, so they do less work.

Each call is timed alone with ``perf_counter_ns``; the selectors take turns in
blocks so machine noise hits all alike; the garbage collector runs between
blocks only. Targets for ``select`` + enqueue: p50 <= 25 µs, p99 <= 80 µs.

A second table times ``select`` + enqueue (d=16) while 0, 1 and 3 other Python
threads do CPU-bound work (a threaded WSGI server, an executor): a call that
releases the GIL (``poll(0)`` serving delivery reports, a system call) may wait a
whole switch interval (5 ms) to get it back. The same selector with a producer
that drops every event (no ``produce``, no ``poll``) and the bare reader, timed
under the same load, isolate what the Kafka calls add.

    python benchmarks/bench_proxy.py                    # 20,000 timed calls each
    python benchmarks/bench_proxy.py --iterations 50000 --out docs/bench_proxy.md
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository, for `producers`

from _output import emit  # noqa: E402
from _peers import MABWiserLinUCB, VowpalWabbit, vw_shared_line  # noqa: E402
from _timing import latency_table, measure  # noqa: E402

from policy_store import (  # noqa: E402
    Observation,
    PolicyReader,
    RedisPolicyStore,
    Settings,
    make_config,
)
from policy_store.simulator import LinearSimulator  # noqa: E402
from producers import (  # noqa: E402
    EventProducer,
    FixedBaseline,
    ProviderSelector,
    SafeProviderSelector,
    Topics,
    create_topics,
    default_features,
)

N_ARMS, N_FEATURES, TRAIN = 5, 16, 2000
ARMS = ["gpt-4", "claude-3", "llama", "mistral", "gemini"]


def services():
    """(bootstrap, redis_url, stop) — the embedded services unless both env vars are set."""
    bootstrap = os.environ.get("RL_COMMONS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("RL_COMMONS_REDIS_URL")
    if bootstrap and redis_url:
        return bootstrap, redis_url, lambda: None
    from stream_app.dev.embedded import EmbeddedServices

    svc = EmbeddedServices.start()
    return svc.bootstrap, svc.redis_url, svc.stop


def bench_settings(bootstrap: str, redis_url: str, **overrides) -> Settings:
    """Settings of one benchmark run: its own key and topic prefix (``bench<random>``), so
    runs against shared services never meet."""
    tag = os.urandom(4).hex()
    return Settings(
        kafka_bootstrap=bootstrap,
        redis_url=redis_url,
        key_prefix=f"bench{tag}",
        topic_prefix=f"bench{tag}.",
        **overrides,
    )


def train(store: RedisPolicyStore, name: str, d: int, seed: int) -> None:
    sim = LinearSimulator(N_ARMS, d, seed=seed)
    stream = sim.stream(TRAIN)
    logged = np.random.default_rng(seed).integers(N_ARMS, size=TRAIN)
    rewards = stream.rewards[np.arange(TRAIN), logged]
    obs = [
        Observation(f"{name}-{t}", ARMS[logged[t]], tuple(stream.contexts[t]), float(rewards[t]))
        for t in range(TRAIN)
    ]
    store.apply(name, obs)


class _NoKafka:
    """A producer that drops every event: ``select`` builds the bytes, no Kafka call."""

    def send(self, topic: str, key: str, value: bytes) -> bool:
        return True

    def close(self, timeout: float = 0.0) -> int:
        return 0


NO_KAFKA = "ProviderSelector.select + event bytes, no Kafka call (d=16)"


def build(settings: Settings, seed: int) -> tuple[dict, list]:
    """The timed callables (each takes one request dict) and the objects to close.

    Like one proxy process: one producer, one reader per policy. The d=16 policy's
    reader is shared by the plain and the safe selector (rollout fraction 1.0, so
    the safe one serves the rl cohort).
    """
    store = RedisPolicyStore.from_url(settings.redis_url, prefix=settings.key_prefix)
    store.create(
        make_config(name="bench16", arms=ARMS, n_features=N_FEATURES, rollout_fraction=1.0)
    )
    store.create(make_config(name="bench7", arms=ARMS, n_features=len(default_features({}))))
    for name, d in (("bench16", N_FEATURES), ("bench7", 7)):
        train(store, name, d, seed)

    def given(request):
        return request["features"]

    producer = EventProducer(settings)
    topics = Topics.from_settings(settings)
    reader16 = PolicyReader(store, "bench16", poll_interval=settings.poll_interval, seed=seed)
    reader7 = PolicyReader(store, "bench7", poll_interval=settings.poll_interval, seed=seed)
    common = {"seed": seed, "producer": producer, "topics": topics}
    sel16 = ProviderSelector(feature_fn=given, reader=reader16, **common)
    safe = SafeProviderSelector(
        baseline=FixedBaseline("gpt-4"), feature_fn=given, reader=reader16, **common
    )
    sel7 = ProviderSelector(reader=reader7, **common)
    no_kafka = ProviderSelector(
        feature_fn=given, reader=reader16, seed=seed, producer=_NoKafka(), topics=topics
    )
    for r in (reader16, reader7):
        assert r.wait_for_version(1, timeout=10), "policy not loaded"

    sim = LinearSimulator(N_ARMS, N_FEATURES, seed=seed)
    stream = sim.stream(TRAIN)
    logged = np.random.default_rng(seed).integers(N_ARMS, size=TRAIN)
    rewards = stream.rewards[np.arange(TRAIN), logged]
    vw = VowpalWabbit(N_ARMS, N_FEATURES, seed, "--squarecb")
    for t in range(TRAIN):
        vw._last_pmf = [1.0 / N_ARMS] * N_ARMS
        vw.learn(stream.contexts[t], int(logged[t]), float(rewards[t]))
    mab = MABWiserLinUCB(N_ARMS, N_FEATURES, seed)
    mab.mab.fit(list(logged), list(rewards), stream.contexts)
    mab.fitted = True

    def vw_select(request):
        x = request["array"]
        pmf = vw.vw.predict([vw_shared_line(x), *vw.actions])
        u = vw.rng.random()
        acc = 0.0
        for k, p in enumerate(pmf):
            acc += p
            if u < acc:
                return k
        return N_ARMS - 1

    fns = {
        "ProviderSelector.select + enqueue (d=16)": sel16.select,
        "SafeProviderSelector.select + enqueue (d=16, rl cohort)": lambda r: safe.select(
            r, request_key=r["user"]
        ),
        "ProviderSelector.select + enqueue (default features of a prompt, d=7)": sel7.select,
        "PolicyReader.select only, no event (d=16)": lambda r: reader16.select(r["array"]),
        NO_KAFKA: no_kafka.select,
        "VW --cb_explore_adf --squarecb predict (d=16)": vw_select,
        "MABWiser LinUCB predict (d=16)": lambda r: mab.select(r["array"]),
    }
    return fns, [producer, reader16, reader7]


def requests(seed: int, n: int = 1000) -> list[dict]:
    contexts = LinearSimulator(N_ARMS, N_FEATURES, seed=seed + 1).stream(n).contexts
    prompts = ["Quick test", "Summarise this report " * 20, "```py\ndef f(): pass\n```"]
    priorities = ["speed", "quality", "cost", None]
    return [
        {
            "features": tuple(float(v) for v in contexts[i]),
            "array": np.ascontiguousarray(contexts[i]),
            "prompt": prompts[i % 3],
            "priority": priorities[i % 4],
            "user": f"user-{i}",
        }
        for i in range(n)
    ]


def table(times: dict) -> str:
    return latency_table(times, "call", "p50 / first row")


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i * i


@contextmanager
def busy_threads(n: int) -> Iterator[None]:
    """``n`` threads running pure Python (they hold the GIL whenever they get it)."""
    stop = threading.Event()
    threads = [threading.Thread(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


LOADS = (0, 1, 3)
LOADED = (
    "ProviderSelector.select + enqueue (d=16)",
    NO_KAFKA,
    "PolicyReader.select only, no event (d=16)",
)


def under_load(fns: dict, inputs: list, iterations: int) -> dict[tuple[str, int], np.ndarray]:
    """Nanoseconds per call of the ``LOADED`` rows, by (row, number of busy threads)."""
    out = {}
    for n in LOADS:
        with busy_threads(n):
            times = measure({name: fns[name] for name in LOADED}, inputs, iterations)
        out.update({(name, n): t for name, t in times.items()})
    return out


def load_table(times: dict[tuple[str, int], np.ndarray]) -> str:
    lines = [
        "| call | busy threads | p50 µs | p99 µs | p99.9 µs | calls > 1 ms |",
        "|---|---|---|---|---|---|",
    ]
    for (name, n), t in times.items():
        p50, p99, p999 = np.percentile(t, [50, 99, 99.9]) / 1000.0
        slow = 100.0 * np.mean(t > 1_000_000)
        lines.append(f"| {name} | {n} | {p50:.1f} | {p99:.1f} | {p999:.1f} | {slow:.2f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20_000, help="timed calls per row")
    ap.add_argument(
        "--load-iterations", type=int, default=10_000, help="timed calls per row under load"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    bootstrap, redis_url, stop = services()
    closers: list = []
    try:
        settings = bench_settings(bootstrap, redis_url, producer_queue_max=1_000_000)
        create_topics(settings, Topics(settings.topic_prefix), partitions=4)
        fns, closers = build(settings, args.seed)
        inputs = requests(args.seed)
        times = measure(fns, inputs, args.iterations)
        loaded = under_load(fns, inputs, args.load_iterations)
        producer = closers[0]
        left = producer.close(timeout=30)
        m = producer.metrics()
    finally:
        for c in closers:
            c.close()
        stop()
    enqueued, dropped = m["enqueued"], m["dropped"]
    delivered = enqueued - left - m["delivery_failed"]
    cmd = "python benchmarks/bench_proxy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"Command: `{cmd.strip()}`  \n"
        f"{N_ARMS} providers, {args.iterations} timed calls per row, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs. Events enqueued {enqueued}, delivered {delivered}, "
        f"dropped {dropped}.\n\n" + table(times) + "\n\n"
        f"While other threads run Python ({args.load_iterations} timed calls per row):\n\n"
        + load_table(loaded)
        + "\n"
    )
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
