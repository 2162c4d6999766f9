"""Constrained objectives learnt through the pipeline, beside the same objectives in-process.

Kafka → one ``rl-commons worker`` subprocess → Redis → 3 streaming proxies
(``ProviderSelector.connect``), on the small routing world of
``tests/unit/test_objective_in_process.py`` (three providers, three request kinds; the cheap
providers are as good as gpt-4 on easy requests only), for both constrained objectives:

* quality floor: gpt-4's mean quality − 0.01 = 0.892; measured by the cost cut against
  gpt-4's cost 0.6 (the oracle's cost is 0.335, a cut of 44 %);
* budget 0.25 per request: measured by the quality bought, the gain over routing everything
  to the cheapest provider (llama, quality 0.739; the oracle gains 0.130).

Requests go round-robin to the proxies at a fixed rate; each outcome is reported at once, so
what a proxy learns comes back with the pipeline's real delay and batching, and the
multiplier λ is the worker's (one value in Redis, read by every proxy with its snapshot).
The same seeds (same requests, same noise) run in-process. Reported per seed, over the
second half: mean expected quality and cost of the served providers, the measure above and
pipeline / in-process. Two diagnostics say whether a gap is noise or lag:

* noise: the in-process measure with four other selector seeds on the same requests (its
  spread is what exploration alone moves);
* lag: at every selection, the outcomes already reported that the proxy's snapshot did not
  hold yet (mean), and the in-process run again with every outcome learnt that many requests
  late (what the delay alone costs).

    python benchmarks/bench_constrained_pipeline.py [--seeds 0,1,2,3,4,5] [--requests 2000]
    python benchmarks/bench_constrained_pipeline.py --quick --out /tmp/pipeline.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import command_line, emit  # noqa: E402
from _worlds import budget_oracle, quality_floor_oracle  # noqa: E402

from policy_store import (  # noqa: E402
    AlgorithmConfig,
    Objective,
    PolicyKeys,
    RedisPolicyStore,
    Settings,
    make_config,
)
from producers import ProviderSelector, Topics, create_topics  # noqa: E402
from stream_app.aggregates import read_health  # noqa: E402
from stream_app.dev import WorkerProcess  # noqa: E402
from stream_app.dev.embedded import EmbeddedServices  # noqa: E402

ARMS = ("gpt-4", "claude-3", "llama")
KIND_P = np.array([0.4, 0.3, 0.3])
QUALITY = np.array([[0.92, 0.90, 0.88], [0.92, 0.86, 0.75], [0.91, 0.70, 0.55]])  # arm × kind
COST = np.array([0.6, 0.3, 0.05])
LATENCY = np.array([0.5, 0.3, 0.1])
FLOOR = float(KIND_P @ QUALITY[0]) - 0.01
BUDGET = 0.25
CHEAPEST_QUALITY = float(KIND_P @ QUALITY[2])
OBJECTIVES = {
    "quality floor": Objective(kind="quality_floor", quality_margin=0.01),
    "budget": Objective(kind="budget", max_cost=BUDGET),
}
#: the in-process selector's default algorithm, so both runs learn with the same settings
ALGORITHM = AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02)
NOISE_SEEDS = (1, 2, 3, 4)  # other selector seeds (× 1000 + seed) for the noise diagnostic


def measure(objective: str, quality: float, cost: float) -> float:
    """The objective's gain: cost cut against gpt-4, or quality above the cheapest."""
    return 1.0 - cost / COST[0] if objective == "quality floor" else quality - CHEAPEST_QUALITY


def oracle(objective: str) -> tuple[float, float]:
    """The exact constrained optimum (quality, cost) on the request-kind mix."""
    rows = np.repeat(np.arange(3), (KIND_P * 10).astype(int))
    eq, ec = QUALITY.T[rows], np.tile(COST, (len(rows), 1))
    if objective == "quality floor":
        best = quality_floor_oracle(eq, ec, FLOOR)
    else:
        best = budget_oracle(eq, ec, BUDGET)
    return best.quality, best.cost


@dataclass
class Played:
    quality: float  # second half, expected
    cost: float
    lag: float = 0.0  # mean outcomes reported but not yet in the selecting snapshot
    dual: float = 0.0  # λ of the last selector's snapshot at the end
    path: list[float] | None = None  # λ each selection was made with


def play(seed: int, requests: int, selectors, rate: float | None, delay: int = 0) -> Played:
    """Serve ``requests`` round-robin over ``selectors``; each outcome is reported at once
    (in-process: ``delay`` requests later)."""
    rng = np.random.default_rng(1000 + seed)
    q_served, c_served, lags, path = [], [], [], []
    late: deque = deque()
    t0 = time.monotonic()
    for i in range(requests):
        if rate:
            wait = t0 + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        selector = selectors[i % len(selectors)]
        request = {"kind": int(rng.choice(3, p=KIND_P))}
        view = selector.reader.view if selector.reader is not None else None
        if view is not None:
            lags.append(i - float(np.sum(view.snapshot.n)))
            path.append(float(view.snapshot.dual))
        d = selector.select(request)
        a = ARMS.index(d.provider)
        q = QUALITY[a, request["kind"]]
        noisy = float(np.clip(q + rng.uniform(-0.08, 0.08), 0.0, 1.0))
        late.append((selector, d, noisy, a))
        while len(late) > delay:
            s, dd, noisy_q, arm = late.popleft()
            s.report_outcome(
                dd.decision_id,
                quality=noisy_q,
                cost=float(COST[arm]),
                latency=float(LATENCY[arm]),
                final=True,
                provider=dd.provider,
            )
        q_served.append(q)
        c_served.append(COST[a])
    half = requests // 2
    lag = float(np.mean(lags)) if lags else 0.0
    view = selectors[-1].reader.view if selectors[-1].reader is not None else None
    dual = float(view.snapshot.dual) if view is not None else float("nan")
    q, c = float(np.mean(q_served[half:])), float(np.mean(c_served[half:]))
    return Played(q, c, lag, dual, path)


def in_process(objective: str, seed: int, requests: int, selector_seed=None, delay=0) -> Played:
    selector = ProviderSelector(
        providers=ARMS,
        feature_fn=one_hot,
        n_features=3,
        seed=seed if selector_seed is None else selector_seed,
        objective=OBJECTIVES[objective],
        baseline_arm="gpt-4",
        algorithm=ALGORITHM,
    )
    return play(seed, requests, [selector], None, delay)


def one_hot(request):
    return [1.0 if request["kind"] == k else 0.0 for k in range(3)]


def pipeline(svc: EmbeddedServices, objective: str, seed: int, args):
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
        objective=OBJECTIVES[objective],
        baseline_arm="gpt-4",
        rollout_fraction=1.0,  # plain selectors: the learned policy serves every request
    )
    store.create(config)
    worker = WorkerProcess(
        settings, "w1", app_id=f"g{u}", workdir=tempfile.mkdtemp(), loglevel="warning"
    )
    selectors = [
        ProviderSelector.connect("qf", settings, feature_fn=one_hot, seed=100 * seed + k)
        for k in range(args.proxies)
    ]
    try:
        worker.start()
        worker.wait_ready()
        for s in selectors:
            s.reader.wait_for_version(0, timeout=10)
        result = play(seed, args.requests, selectors, args.rate)
        for s in selectors:
            s.producer.flush(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every outcome applied
            state = store.read_state("qf")
            if sum(st.n for st in state.arms.values()) >= args.requests:
                break
            time.sleep(0.2)
        time.sleep(2 * settings.poll_interval + 0.5)  # let the proxies load the last version
        duals = sorted(round(s.reader.view.snapshot.dual, 2) for s in selectors)
        n = sum(st.n for st in state.arms.values())
        if n < args.requests:  # say where the rest went
            print("  worker:", read_health(store.client, PolicyKeys(store.prefix, "qf")))
            for s in selectors:
                m = s.metrics()
                print("  proxy:", {k: v for k, v in m.items() if k.startswith("producer_")})
        return result, n, state.dual, duals
    finally:
        for s in selectors:
            s.close()
        worker.stop()
        store.client.close()


def report(objective: str, svc: EmbeddedServices, seeds: list[int], args) -> tuple[str, list]:
    """The objective's markdown table over ``seeds`` and its per-seed ratios."""
    what = "cost cut" if objective == "quality floor" else "quality gain"
    target = f"floor {FLOOR:.3f}" if objective == "quality floor" else f"budget {BUDGET:g}"
    oq, oc = oracle(objective)
    lines = [
        f"# {objective.capitalize()} ({target}; oracle quality {oq:.4f}, cost {oc:.3f}, "
        f"{what} {measure(objective, oq, oc):.3f})\n",
        f"| seed | in-process: quality, cost, {what} | pipeline: quality, cost, {what} "
        f"| pipeline / in-process | λ in-process | noise: {what} over {len(NOISE_SEEDS)} other "
        f"selector seeds (mean ± sd) | lag (requests) | in-process with that lag: {what} "
        "| applied | λ Redis (proxies) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ins, pipes, every, ratios = [], [], [], []
    for seed in seeds:
        p0 = in_process(objective, seed, args.requests)
        p1, n, dual, duals = pipeline(svc, objective, seed, args)
        m0, m1 = measure(objective, p0.quality, p0.cost), measure(objective, p1.quality, p1.cost)
        others = [in_process(objective, seed, args.requests, 1000 * k + seed) for k in NOISE_SEEDS]
        noise = [measure(objective, r.quality, r.cost) for r in others]
        lagged = in_process(objective, seed, args.requests, delay=int(round(p1.lag)))
        ins.append(m0)
        pipes.append(m1)
        every.extend([m0, *noise])
        ratios.append(m1 / m0)
        lines.append(
            f"| {seed} | {p0.quality:.4f}, {p0.cost:.3f}, {m0:.3f} "
            f"| {p1.quality:.4f}, {p1.cost:.3f}, {m1:.3f} | {m1 / m0:.0%} | {p0.dual:.2f} "
            f"| {np.mean(noise):.3f} ± {np.std(noise, ddof=1):.3f} | {p1.lag:.1f} "
            f"| {measure(objective, lagged.quality, lagged.cost):.3f} | {n:.0f} "
            f"| {dual:.2f} ({', '.join(f'{d:.2f}' for d in duals)}) |"
        )
        print(lines[-1], flush=True)
    lines.append(
        f"\nPipeline / in-process: median of the per-seed ratios **{np.median(ratios):.0%}**; "
        f"mean {what} {np.mean(pipes):.3f} against {np.mean(ins):.3f} on the same seeds "
        f"({np.mean(pipes) / np.mean(ins):.0%}) and {np.mean(every):.3f} over every in-process "
        f"run ({len(every)} runs; {np.mean(pipes) / np.mean(every):.0%})."
    )
    return "\n".join(lines), ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s over all proxies")
    ap.add_argument("--proxies", type=int, default=3)
    ap.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated")
    ap.add_argument("--quick", action="store_true", help="seeds 0,1,2 only")
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)
    seeds = [0, 1, 2] if args.quick else [int(s) for s in args.seeds.split(",")]
    t0 = time.monotonic()
    sections, verdicts = [], []
    with EmbeddedServices.start() as svc:
        for objective in args.objectives.split(","):
            text, ratios = report(objective, svc, seeds, args)
            sections.append(text)
            median = float(np.median(ratios))
            verdicts.append(
                f"- {objective.capitalize()}: median pipeline / in-process {median:.0%} over "
                f"{len(seeds)} seeds ({'within' if median >= 0.9 else 'outside'} 10 %)."
            )
    head = (
        f"Command: `{command_line('bench_constrained_pipeline.py', argv)}`  \n"
        f"Kafka → one stream worker → Redis → {args.proxies} proxies, {args.requests} requests "
        f"per run at {args.rate:g}/s round-robin, each outcome reported at once; second half, "
        f"expected values; the same requests and noise in-process beside it; "
        f"{time.monotonic() - t0:.0f} s in total."
    )
    body = "\n\n".join(sections)
    return emit(f"{head}\n\n{body}\n\n# Acceptance\n\n" + "\n".join(verdicts) + "\n", args.out)


if __name__ == "__main__":
    raise SystemExit(main())
