"""Selection latency: ``PolicyReader.select`` against VW and MABWiser predict, same run.

Setting: 5 arms, 16 features, parameters learnt from 2,000 simulated rewards
(the same data for every library). Each call is timed alone with
``time.perf_counter_ns``; the libraries take turns in blocks of calls so that
machine noise hits all of them alike (see ``measure``). Reported: p50, p99 and
p99.9 in µs, and each peer's p50 relative to ours.

    python benchmarks/bench_select.py                 # 20,000 timed calls per library
    python benchmarks/bench_select.py --iterations 100000 --out docs/select.md

Our reader is created with ``start=False`` and loaded with one ``refresh()``, so
no background thread competes with the timed loop. The timed call includes
everything the proxy pays: input conversion, the shape check, the UCB scores,
the probability vector, drawing the arm and building the ``Selection``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import emit  # noqa: E402
from _peers import MABWiserLinUCB, VowpalWabbit, vw_shared_line  # noqa: E402
from _timing import latency_table, measure  # noqa: E402

from policy_store import (  # noqa: E402
    AlgorithmConfig,
    InMemoryPolicyStore,
    Observation,
    PolicyReader,
    make_config,
)
from policy_store.simulator import LinearSimulator  # noqa: E402

N_ARMS, N_FEATURES, TRAIN = 5, 16, 2000


def build(seed: int, algorithm: AlgorithmConfig):
    """Train every library on the same stream; return callables that select for a context."""
    sim = LinearSimulator(N_ARMS, N_FEATURES, seed=seed)
    stream = sim.stream(TRAIN)
    rng = np.random.default_rng(seed)
    logged = rng.integers(N_ARMS, size=TRAIN)  # uniformly logged data, same for everyone
    rewards = stream.rewards[np.arange(TRAIN), logged]

    arms = [f"arm{k}" for k in range(N_ARMS)]
    store = InMemoryPolicyStore()
    store.create(make_config(name="bench", arms=arms, n_features=N_FEATURES, algorithm=algorithm))
    store.apply(
        "bench",
        [
            Observation(f"d{t}", arms[logged[t]], tuple(stream.contexts[t]), float(rewards[t]))
            for t in range(TRAIN)
        ],
    )
    reader = PolicyReader(store, "bench", seed=seed, start=False)
    assert reader.refresh(), "reader did not load the policy"

    vw = VowpalWabbit(N_ARMS, N_FEATURES, seed, "--squarecb")
    for t in range(TRAIN):
        vw._last_pmf = [1.0 / N_ARMS] * N_ARMS
        vw.learn(stream.contexts[t], int(logged[t]), float(rewards[t]))

    mab = MABWiserLinUCB(N_ARMS, N_FEATURES, seed)
    mab.mab.fit(list(logged), list(rewards), stream.contexts)
    mab.fitted = True

    def vw_select(x: np.ndarray) -> int:
        # what a proxy does with VW: format the example, predict the pmf, sample an arm
        pmf = vw.vw.predict([vw_shared_line(x), *vw.actions])
        u = vw.rng.random()
        acc = 0.0
        for k, p in enumerate(pmf):
            acc += p
            if u < acc:
                return k
        return N_ARMS - 1

    return {
        f"rl-commons PolicyReader.select ({algorithm.name})": reader.select,
        "VW --cb_explore_adf --squarecb predict": vw_select,
        "MABWiser LinUCB predict": mab.select,
    }, reader


def table(times: dict) -> str:
    return latency_table(times, "selector", "p50 vs ours")


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS"
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return "unknown BLAS"
    i = info[0]
    return f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20_000, help="timed calls per library")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--algorithm", choices=["linucb", "ts"], default=None, help="default: the project default"
    )
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    algorithm = (
        AlgorithmConfig() if args.algorithm is None else AlgorithmConfig(name=args.algorithm)
    )
    fns, _reader = build(args.seed, algorithm)
    contexts = LinearSimulator(N_ARMS, N_FEATURES, seed=args.seed + 1).stream(1000).contexts
    times = measure(fns, contexts, args.iterations)
    cmd = "python benchmarks/bench_select.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text = (
        f"Command: `{cmd.strip()}`  \n"
        f"{N_ARMS} arms, {N_FEATURES} features, {args.iterations} timed calls each, "
        f"numpy {np.__version__}, {blas_info()}.\n\n" + table(times) + "\n"
    )
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
