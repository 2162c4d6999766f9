"""A quality floor learnt through the pipeline, beside the same objective in-process.

Kafka → one ``rl-commons worker`` subprocess → Redis → 3 streaming proxies
(``ProviderSelector.connect``), on the small routing world of
``tests/unit/test_objective_in_process.py`` (three providers, three request kinds; the cheap
providers are as good as gpt-4 on easy requests only). Requests go round-robin to the
proxies at a fixed rate; each outcome is reported at once, so what a proxy learns comes back
with the pipeline's real delay and batching, and the multiplier λ is the worker's (one value
in Redis, read by every proxy with its snapshot). The same seeds run in-process for
comparison. Reported per seed: mean expected quality and cost of the served providers over
the second half, against the floor (gpt-4's mean quality − 0.01 = 0.892) and gpt-4's cost
(0.6; the oracle's is 0.335).

    .venv/bin/python benchmarks/check_constrained_pipeline.py [--seeds 0,1,2] [--requests 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

import numpy as np

from policy_store import (
    AlgorithmConfig,
    Objective,
    PolicyKeys,
    RedisPolicyStore,
    Settings,
    make_config,
)
from producers import ProviderSelector, Topics, create_topics
from stream_app.aggregates import read_health
from stream_app.dev import WorkerProcess
from stream_app.dev.embedded import EmbeddedServices

ARMS = ("gpt-4", "claude-3", "llama")
KIND_P = np.array([0.4, 0.3, 0.3])
QUALITY = np.array([[0.92, 0.90, 0.88], [0.92, 0.86, 0.75], [0.91, 0.70, 0.55]])
COST = np.array([0.6, 0.3, 0.05])
LATENCY = np.array([0.5, 0.3, 0.1])
FLOOR = float(KIND_P @ QUALITY[0]) - 0.01
OBJECTIVE = Objective(kind="quality_floor", quality_margin=0.01)
#: the in-process selector's default algorithm, so both runs learn with the same settings
ALGORITHM = AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02)


def one_hot(request):
    return [1.0 if request["kind"] == k else 0.0 for k in range(3)]


def play(seed: int, requests: int, selectors, rate: float | None) -> tuple[float, float]:
    """Serve ``requests`` round-robin over ``selectors``; second-half (quality, cost)."""
    rng = np.random.default_rng(1000 + seed)
    q_served, c_served = [], []
    t0 = time.monotonic()
    for i in range(requests):
        if rate:
            wait = t0 + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        selector = selectors[i % len(selectors)]
        request = {"kind": int(rng.choice(3, p=KIND_P))}
        d = selector.select(request)
        a = ARMS.index(d.provider)
        q = QUALITY[a, request["kind"]]
        noisy = float(np.clip(q + rng.uniform(-0.08, 0.08), 0.0, 1.0))
        selector.report_outcome(
            d.decision_id,
            quality=noisy,
            cost=float(COST[a]),
            latency=float(LATENCY[a]),
            final=True,
            provider=d.provider,
        )
        q_served.append(q)
        c_served.append(COST[a])
    half = requests // 2
    return float(np.mean(q_served[half:])), float(np.mean(c_served[half:]))


def in_process(seed: int, requests: int) -> tuple[float, float]:
    selector = ProviderSelector(
        providers=ARMS,
        feature_fn=one_hot,
        n_features=3,
        seed=seed,
        objective=OBJECTIVE,
        baseline_arm="gpt-4",
        algorithm=ALGORITHM,
    )
    return play(seed, requests, [selector], None)


def pipeline(svc: EmbeddedServices, seed: int, requests: int, rate: float, proxies: int):
    u = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"c{u}.")
    settings = Settings(
        kafka_bootstrap=svc.bootstrap,
        redis_url=svc.redis_url,
        key_prefix=f"c{u}",
        topic_prefix=topics.prefix,
    )
    create_topics(settings, topics, partitions=4)
    store = RedisPolicyStore.from_settings(settings)
    config = make_config(
        name="qf",
        arms=ARMS,
        n_features=3,
        algorithm=ALGORITHM,
        objective=OBJECTIVE,
        baseline_arm="gpt-4",
    )
    store.create(config)
    worker = WorkerProcess(
        settings, "w1", app_id=f"g{u}", workdir=tempfile.mkdtemp(), loglevel="warning"
    )
    selectors = [
        ProviderSelector.connect("qf", settings, feature_fn=one_hot, seed=100 * seed + k)
        for k in range(proxies)
    ]
    try:
        worker.start()
        worker.wait_ready()
        for s in selectors:
            s.reader.wait_for_version(0, timeout=10)
        result = play(seed, requests, selectors, rate)
        for s in selectors:
            s.producer.flush(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every outcome applied
            state = store.read_state("qf")
            if sum(st.n for st in state.arms.values()) >= requests:
                break
            time.sleep(0.2)
        duals = {s.reader.view.snapshot.dual for s in selectors}
        n = sum(st.n for st in state.arms.values())
        if n < requests:  # say where the rest went
            print("  worker:", read_health(store.client, PolicyKeys(store.prefix, "qf")))
            for s in selectors:
                m = s.metrics()
                print("  proxy:", {k: v for k, v in m.items() if k.startswith("producer_")})
        return result, state, duals
    finally:
        for s in selectors:
            s.close()
        worker.stop()
        store.client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s over all proxies")
    ap.add_argument("--proxies", type=int, default=3)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"floor {FLOOR:.4f}; gpt-4 cost {COST[0]}; {args.requests} requests, second half")
    print("seed | in-process quality, cost | pipeline quality, cost | applied | λ (Redis)")
    with EmbeddedServices.start() as svc:
        for seed in seeds:
            q0, c0 = in_process(seed, args.requests)
            (q1, c1), state, duals = pipeline(svc, seed, args.requests, args.rate, args.proxies)
            n = sum(st.n for st in state.arms.values())
            print(
                f"{seed} | {q0:.4f} ({q0 - FLOOR:+.4f}), {c0:.3f} | "
                f"{q1:.4f} ({q1 - FLOOR:+.4f}), {c1:.3f} | {n:.0f} | {state.dual:.2f} "
                f"(proxies: {sorted(round(d, 2) for d in duals)})"
            )


if __name__ == "__main__":
    main()
