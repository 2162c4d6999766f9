"""Learning through the full pipeline: proxy → Kafka → stream worker → Redis → proxy.

The default policy learns from delayed, batched feedback and is compared with
the in-process default ``ContextualBandit`` on the same simulator streams and
seeds as ``bench_learning.py``.

    python benchmarks/bench_pipeline_learning.py      # 3 seeds × 2000 rounds, 3 replicas each
    python benchmarks/bench_pipeline_learning.py --rate 20 --out docs/pipeline_learning.md

What runs (all real components, on loopback):

* the embedded broker and Redis (``stream_app.dev.embedded.EmbeddedServices``), or
  the services named by ``--kafka-bootstrap`` / ``--redis-url``;
* one stream worker, ``rl-commons worker`` in a child process, with its default
  batching (``--batch-size 1000 --batch-within 0.05``) unless told otherwise;
* the proxy side in this process: a streaming ``ProviderSelector`` (a
  ``PolicyReader`` polling Redis every ``--poll-interval`` s, default 0.1, plus an
  ``EventProducer``) serving requests at a fixed ``--rate`` (requests/s). Each
  request's context is the simulator's context (the feature function returns it);
  after ``--response-delay`` s (default 0: the call answers at once, so only the
  pipeline's own delay is measured) its outcome is published, ``final=True``.

Reward mapping: the policy uses the default ``RewardSpec`` (reward = 0.5·quality +
0.3·(1 − cost) + 0.2·(1 − latency)); an observed simulator reward r ∈ [0, 1] is
reported as quality = r, cost = 1 − r, latency = 1 − r, which that spec maps back
to exactly r. Only the clipped settings of the simulator (rewards in [0, 1], as
real rewards are) are used, so the mapping is exact and the in-process learner sees
the very same rewards.

Regret of a round = best expected reward for its context − expected reward of the
served arm (noise removed), as in ``bench_learning.py``. The in-process number is
the mean over ``--inprocess-seeds`` selection seeds on each stream (the first is
the seed ``bench_learning.py`` uses), so the ratio's noise comes mostly from the
single pipeline run per stream.

Freshness is measured on the proxy side: for every snapshot the reader installs,
the time from the publication of the newest outcome it includes to its
installation; "lag in rounds" is how many published outcomes the snapshot used for
a selection did not include yet.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the project's packages, even when it is not installed
sys.path[:0] = [str(HERE), str(ROOT)]

from _output import emit  # noqa: E402
from _peers import Ours, Uniform  # noqa: E402
from _pipeline_play import PipelineRun, play_pipeline, start_worker  # noqa: E402
from bench_learning import SETTINGS, Setting, run  # noqa: E402

from policy_store import RedisPolicyStore, Settings  # noqa: E402
from policy_store.simulator import Stream  # noqa: E402
from producers import EventProducer, create_topics  # noqa: E402

#: The clipped simulator settings (rewards in [0, 1]); see the module docstring.
DEFAULT_SETTINGS = ("K3-d8-noise0.2-clip-rho0.5", "K5-d16-noise0.3-clip-rho0.5")


# -- the comparison --------------------------------------------------------------------------------
@dataclass
class Row:
    setting: str
    seed: int
    pipeline_regret: float
    pipeline_reward: float
    inprocess_regret: float
    inprocess_reward: float
    delayed_regret: float
    uniform_regret: float
    run: PipelineRun

    @property
    def ratio(self) -> float:
        return self.pipeline_regret / self.inprocess_regret


def _mean_regret_reward(stream: Stream, served: np.ndarray) -> tuple[float, float]:
    rows = np.arange(len(stream))
    return float(stream.regret(served).mean()), float(stream.expected[rows, served].mean())


def in_process(setting: Setting, stream: Stream, seed: int, n_seeds: int) -> tuple[float, float]:
    """Mean regret and reward of the default ContextualBandit over ``n_seeds`` selection seeds."""
    out = [
        _mean_regret_reward(
            stream, run(Ours(setting.n_arms, setting.n_features, 10_000 + seed + 7919 * j), stream)
        )
        for j in range(n_seeds)
    ]
    return float(np.mean([o[0] for o in out])), float(np.mean([o[1] for o in out]))


def replay_delayed(
    setting: Setting, stream: Stream, used: np.ndarray, seed: int, n_seeds: int
) -> float:
    """Mean regret of the in-process default bandit fed with the pipeline's observed delay.

    Before round t it has learnt the oldest ``used[t]`` outcomes — as many as the
    snapshot the proxy used had. What separates this number from the in-process one is
    the cost of delayed feedback; what separates it from the pipeline's is anything
    else the pipeline does (ordering across partitions, cold-start pulls, noise).
    """
    out = []
    for j in range(n_seeds):
        learner = Ours(setting.n_arms, setting.n_features, 10_000 + seed + 7919 * j)
        served = np.empty(len(stream), dtype=int)
        learned = 0
        for t in range(len(stream)):
            while learned < min(int(used[t]), t):
                a = int(served[learned])
                x = stream.contexts[learned]
                learner.learn(x, a, float(stream.rewards[learned, a]))
                learned += 1
            served[t] = learner.select(stream.contexts[t])
        out.append(float(stream.regret(served).mean()))
    return float(np.mean(out))


def evaluate(
    base: Settings,
    workdir: Path,
    worker_args: list[str],
    setting_names: list[str],
    seeds: list[int],
    rounds: int,
    *,
    rate: float,
    response_delay: float,
    inprocess_seeds: int,
    replicas: int = 3,
    progress: bool = True,
) -> list[Row]:
    """Play every (setting, seed) stream through the pipeline (services must be running).

    Each stream is played by ``replicas`` proxies at once (own policy, own selection seed,
    each at ``rate``), and the pipeline regret is their mean: one run's regret depends a
    lot on its own exploration draws and timing, as the in-process number's would.

    Every stream gets fresh topics and its own worker. The embedded broker's fetch cost
    grows with the number of record batches a partition holds (docs/stream.md), so
    streams played one after the other on the same topics would each meet a slower
    broker than the one before; a production Kafka indexes its logs and does not.
    """
    store = RedisPolicyStore.from_url(base.redis_url, prefix=base.key_prefix)
    producer = EventProducer(base).start()
    rows = []
    try:
        for name in setting_names:
            setting = SETTINGS[name]
            for seed in seeds:
                stream = setting.stream(rounds, seed)
                settings = base.model_copy(
                    update={"topic_prefix": f"{base.topic_prefix}{len(rows)}."}
                )
                create_topics(settings, partitions=4)
                wdir = workdir / f"w{len(rows)}"
                wdir.mkdir()
                worker = start_worker(settings, wdir, worker_args)
                sel_seeds = [10_000 + seed + 7919 * j for j in range(replicas)]
                try:
                    worker.wait_ready(timeout=90.0)
                    with ThreadPoolExecutor(replicas) as pool:
                        futures = [
                            pool.submit(
                                play_pipeline,
                                stream,
                                f"pl-{name}-s{seed}-r{j}",
                                settings,
                                store,
                                producer,
                                sel_seed,
                                rate=rate,
                                response_delay=response_delay,
                            )
                            for j, sel_seed in enumerate(sel_seeds)
                        ]
                        done = [f.result() for f in futures]
                finally:
                    worker.stop(timeout=15.0)
                regret_reward = [_mean_regret_reward(stream, r.served) for r in done]
                p_regret = float(np.mean([rr[0] for rr in regret_reward]))
                p_reward = float(np.mean([rr[1] for rr in regret_reward]))
                i_regret, i_reward = in_process(setting, stream, seed, inprocess_seeds)
                delayed = float(
                    np.mean(
                        [
                            replay_delayed(setting, stream, r.used, seed, inprocess_seeds)
                            for r in done
                        ]
                    )
                )
                u = run(Uniform(setting.n_arms, setting.n_features, 10_000 + seed), stream)
                u_regret = _mean_regret_reward(stream, u)[0]
                res = PipelineRun(
                    served=np.concatenate([r.served for r in done]),
                    lag_rounds=np.concatenate([r.lag_rounds for r in done]),
                    used=np.concatenate([r.used for r in done]),
                    freshness=[f for r in done for f in r.freshness],
                    seconds=max(r.seconds for r in done),
                    dropped=sum(r.dropped for r in done),
                    applied=sum(r.applied for r in done),
                )
                row = Row(
                    name, seed, p_regret, p_reward, i_regret, i_reward, delayed, u_regret, res
                )
                rows.append(row)
                if progress:
                    print(
                        f"  {name} seed {seed}: pipeline {p_regret:.4f}, in-process "
                        f"{i_regret:.4f} ({row.ratio:.2f}×), same delay {delayed:.4f}, median lag "
                        f"{np.median(res.lag_rounds):.0f} rounds, {res.seconds:.1f} s",
                        file=sys.stderr,
                    )
    finally:
        producer.close(10.0)
    return rows


def table(rows: list[Row], rate: float, response_delay: float) -> str:
    lines = [
        "| setting | seed | pipeline regret / round | in-process regret / round | ratio "
        "| in-process, same delay | uniform regret | median lag (rounds) "
        "| freshness p50 / p90 (ms) | applied |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = np.asarray(r.run.freshness) * 1000 if r.run.freshness else np.array([np.nan])
        lines.append(
            f"| {r.setting} | {r.seed} | {r.pipeline_regret:.4f} | {r.inprocess_regret:.4f} "
            f"| {r.ratio:.2f}× | {r.delayed_regret:.4f} | {r.uniform_regret:.4f} "
            f"| {np.median(r.run.lag_rounds):.0f} "
            f"| {np.median(f):.0f} / {np.percentile(f, 90):.0f} "
            f"| {r.run.applied}/{len(r.run.served)} |"
        )
    pipe = float(np.mean([r.pipeline_regret for r in rows]))
    inproc = float(np.mean([r.inprocess_regret for r in rows]))
    uni = float(np.mean([r.uniform_regret for r in rows]))
    delayed = float(np.mean([r.delayed_regret for r in rows]))
    fresh = np.concatenate([np.asarray(r.run.freshness) for r in rows]) * 1000
    lag = np.concatenate([r.run.lag_rounds for r in rows])
    ratio = pipe / inproc
    verdict = "within" if ratio <= 1.1 else "NOT within"
    lines += [
        "",
        f"Mean regret per round: pipeline {pipe:.4f}, in-process {inproc:.4f}, uniform random "
        f"{uni:.4f}. **Pipeline / in-process = {ratio:.2f}×** ({verdict} the 1.1× target) at "
        f"{rate:g} requests/s with outcomes published {response_delay * 1000:.0f} ms after "
        "each decision.",
        f"The in-process bandit fed with the same delay as the pipeline (replay of the "
        f"observed lag) has regret {delayed:.4f} ({delayed / inproc:.2f}× in-process): "
        "that part of the gap is the cost of delayed feedback itself.",
        f"Freshness (outcome published → parameters used by the proxy): median "
        f"{np.median(fresh):.0f} ms, p90 {np.percentile(fresh, 90):.0f} ms; the proxy "
        f"selected with parameters missing a median of {np.median(lag):.0f} "
        f"(p90 {np.percentile(lag, 90):.0f}) published outcomes.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000, help="rounds per stream (default 2000)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    ap.add_argument(
        "--settings",
        default=",".join(DEFAULT_SETTINGS),
        help="comma-separated simulator settings (clipped ones: rewards must lie in [0, 1])",
    )
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    ap.add_argument(
        "--response-delay",
        type=float,
        default=0.0,
        help="seconds from a decision to its outcome (default 0)",
    )
    ap.add_argument(
        "--poll-interval", type=float, default=0.1, help="PolicyReader refresh period (default 0.1)"
    )
    ap.add_argument(
        "--worker-args",
        default="",
        help="extra `rl-commons worker` options, e.g. '--batch-within 0.02'",
    )
    ap.add_argument(
        "--inprocess-seeds",
        type=int,
        default=5,
        help="selection seeds averaged for the in-process number (default 5)",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=3,
        help="proxies playing each stream at once, each with its own selection seed; the "
        "pipeline regret is their mean (default 3)",
    )
    ap.add_argument("--kafka-bootstrap", help="use this broker instead of the embedded one")
    ap.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    names = args.settings.split(",")
    for name in names:
        if name not in SETTINGS:
            ap.error(f"unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        if not SETTINGS[name].clip:
            ap.error(f"setting {name!r} is not clipped: rewards outside [0, 1] cannot be reported")
    seeds = list(range(args.seeds))
    svc = None
    t0 = time.perf_counter()
    try:
        if args.kafka_bootstrap and args.redis_url:
            bootstrap, redis_url = args.kafka_bootstrap, args.redis_url
        else:
            from stream_app.dev.embedded import EmbeddedServices

            svc = EmbeddedServices.start()
            bootstrap, redis_url = svc.bootstrap, svc.redis_url
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            key_prefix=f"bench{tag}",
            topic_prefix=f"bench{tag}.",
            poll_interval=args.poll_interval,
        )
        with tempfile.TemporaryDirectory(prefix="rlc-bench-") as tmp:
            rows = evaluate(
                settings,
                Path(tmp),
                args.worker_args.split(),
                names,
                seeds,
                args.rounds,
                rate=args.rate,
                response_delay=args.response_delay,
                inprocess_seeds=args.inprocess_seeds,
                replicas=args.replicas,
            )
    finally:
        if svc is not None:
            svc.stop()
    elapsed = time.perf_counter() - t0
    cmd = "python benchmarks/bench_pipeline_learning.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    worker_opts = args.worker_args or "defaults: --batch-size 1000 --batch-within 0.05"
    header = (
        f"Command: `{cmd.strip()}`  \n"
        f"Settings: {', '.join(names)}; seeds {seeds[0]}..{seeds[-1]}; {args.rounds} rounds "
        f"per stream, each stream played by {args.replicas} proxies at once (own selection "
        f"seeds, {args.rate:g} requests/s each); fresh topics and one stream worker per stream "
        f"({worker_opts}); "
        f"PolicyReader poll interval {args.poll_interval:g} s; {elapsed:.0f} s in total.\n"
    )
    text = header + "\n" + table(rows, args.rate, args.response_delay) + "\n"
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
