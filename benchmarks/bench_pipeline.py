"""Stream pipeline speed: rewards/s of one worker, a bare Faust agent's events/s on the
same broker in the same run, and freshness (outcome produced -> new version visible).

    python benchmarks/bench_pipeline.py                 # embedded broker + Redis
    python benchmarks/bench_pipeline.py --pairs 40000 --raw 120000 --fresh 200

Uses RL_COMMONS_KAFKA_BOOTSTRAP / RL_COMMONS_REDIS_URL when both are set, otherwise
starts the embedded services. Three measurements:

1. raw: a bare Faust agent (``async for event in stream.events()``, nothing else)
   drains a pre-produced topic; events/s from its first to its last event.
2. pipeline: one ``rl-commons worker`` runs; ``--pairs`` decisions, each followed by
   its outcome, are produced at ``--rate`` per second (live traffic); rewards/s =
   pairs / (first produced -> last applied, read from Redis as the sum of the arms' n).
   When the worker keeps up this equals the offered rate; raise ``--rate`` to find
   the ceiling.
3. freshness: with the worker caught up, one decision + outcome at a time; the time
   from producing the outcome to a ``PolicyReader`` (poll interval 5 ms) seeing the
   new version, p50/p99 over ``--fresh`` samples.

Workers run as subprocesses of this script, each with its own consumer group.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from policy_store import Settings
    from stream_app.dev import WorkerProcess

# Tansu answers a JoinGroup after about half the session timeout: these make a Faust
# agent (re)join in ~3 s instead of ~30 s.
FAST_REJOIN = {
    "broker_session_timeout": 6.0,
    "broker_rebalance_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
}

ARMS = ("gpt-4", "claude-3", "llama")
D = 8


# -- the bare agent (run as: bench_pipeline.py --bare-agent BOOTSTRAP TOPIC COUNT WORKDIR)
def bare_agent(bootstrap: str, topic: str, count: int, workdir: str) -> None:
    """A Faust app whose only agent counts events; prints the events/s it saw."""
    import faust

    app = faust.App(
        f"bare-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=workdir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        **FAST_REJOIN,
    )
    src = app.topic(topic, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "t0": 0.0}

    @app.agent(src)
    async def count_events(stream):
        async for _event in stream.events():
            if seen["n"] == 0:
                seen["t0"] = time.perf_counter()
            seen["n"] += 1
            if os.environ.get("BENCH_DEBUG") and seen["n"] % 2000 == 0:
                print(f"{time.perf_counter() - seen['t0']:.2f} {seen['n']}", flush=True)
            if seen["n"] == count:
                dt = time.perf_counter() - seen["t0"]
                print(f"RAW {count / dt:.1f}", flush=True)
                app._crash_reason = None
                os._exit(0)

    worker = faust.Worker(app, loglevel="warning", redirect_stdouts=False, quiet=True)
    worker.spinner = None  # as in `rl-commons worker`: no DEBUG root logger
    worker.execute_from_commandline()


# -- helpers ---------------------------------------------------------------------------------
def _producer(bootstrap: str):
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def _produce(p, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, key=key, value=value)
            return
        except BufferError:
            p.poll(0.01)


def _events(i: int, policy: str, rng: random.Random, prefix: str):
    from producers import DecisionEvent, OutcomeEvent

    arm = rng.choice(ARMS)
    now = time.time()
    d = DecisionEvent(
        decision_id=f"{prefix}{i}",
        policy=policy,
        policy_version=0,
        timestamp=now,
        arms=ARMS,
        arm=arm,
        propensity=1 / 3,
        features=tuple(rng.uniform(-1, 1) for _ in range(D)),
    )
    o = OutcomeEvent(
        decision_id=f"{prefix}{i}",
        timestamp=now,
        quality=rng.random(),
        cost=rng.random() * 0.1,
        latency=rng.random(),
        final=True,
    )
    return d, o


def _worker(settings: Settings, app_id: str, workdir: str) -> WorkerProcess:
    """``rl-commons worker --without-web`` in a child process, log in ``<workdir>/worker.log``."""
    from stream_app.dev import WorkerProcess

    return WorkerProcess(
        settings, "worker", app_id=app_id, workdir=workdir, loglevel="warning", web=False, cwd=ROOT
    ).start()


def _wait(pred, timeout: float, proc: subprocess.Popen, tmp: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"worker did not get there; log in {tmp}/worker.log")


def _total_n(store, policy: str) -> float:
    return sum(st.n for st in store.read_state(policy).arms.values())


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# -- the three measurements ---------------------------------------------------------------
def measure_raw(bootstrap: str, n: int, tmp: str) -> float:
    from policy_store import Settings
    from producers import Topics, create_topics

    t = Topics(prefix=f"raw{uuid.uuid4().hex[:6]}.")
    create_topics(Settings(kafka_bootstrap=bootstrap), t, partitions=4)
    p = _producer(bootstrap)
    rng = random.Random(1)
    for i in range(n):
        d, _ = _events(i, "raw", rng, "r")
        _produce(p, t.decisions, d.decision_id.encode(), d.to_bytes())
        if i % 10000 == 0:
            p.poll(0)
    p.flush(60)
    out = subprocess.run(
        [sys.executable, __file__, "--bare-agent", bootstrap, t.decisions, str(n), tmp],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    for line in out.stdout.splitlines():
        if "RAW " in line:
            return float(line.split("RAW ", 1)[1].split()[0])
    raise RuntimeError(f"bare agent failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def run(args: argparse.Namespace) -> None:
    from policy_store import PolicyReader, RedisPolicyStore, Settings, make_config
    from producers import Topics, create_topics

    bootstrap = os.environ.get("RL_COMMONS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("RL_COMMONS_REDIS_URL")
    svc = None
    if not (bootstrap and redis_url):
        from stream_app.dev.embedded import EmbeddedServices

        svc = EmbeddedServices.start()
        bootstrap, redis_url = svc.bootstrap, svc.redis_url
    tmp = tempfile.mkdtemp(prefix="bench-pipeline-")
    workers: list[WorkerProcess] = []
    try:
        raw = measure_raw(bootstrap, args.raw, tmp)
        print(f"raw Faust agent: {raw:,.0f} events/s", file=sys.stderr)

        u = uuid.uuid4().hex[:6]
        topics = Topics(prefix=f"bp{u}.")
        create_topics(Settings(kafka_bootstrap=bootstrap), topics, partitions=4)
        prefix = f"bp{u}"
        store = RedisPolicyStore.from_url(redis_url, prefix=prefix)
        policy = "route"
        store.create(make_config(name=policy, arms=ARMS, n_features=D))
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            key_prefix=prefix,
            topic_prefix=topics.prefix,
        )
        p = _producer(bootstrap)
        rng = random.Random(2)
        pairs = []
        for i in range(args.pairs + 1):
            d, o = _events(i, policy, rng, "b")
            pairs.append((d.decision_id.encode(), d.to_bytes(), o.to_bytes()))

        worker = _worker(settings, f"bench-{u}", tmp)
        workers.append(worker)
        w = worker.proc
        # warm up: one pair, wait until it is applied (the worker joined and recovered)
        k, dv, ov = pairs[0]
        _produce(p, topics.decisions, k, dv)
        _produce(p, topics.outcomes, k, ov)
        p.flush(10)
        _wait(lambda: _total_n(store, policy) >= 1, 120, w, tmp)
        # live traffic at --rate pairs/s, each outcome right after its decision
        t_start = time.perf_counter()
        for i, (k, dv, ov) in enumerate(pairs[1:], 1):
            _produce(p, topics.decisions, k, dv)
            _produce(p, topics.outcomes, k, ov)
            if i % 100 == 0:
                p.poll(0)
                ahead = t_start + i / args.rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        p.flush(60)
        t_sent = time.perf_counter()
        _wait(lambda: _total_n(store, policy) >= args.pairs + 1, 600, w, tmp)
        t_done = time.perf_counter()
        rate = args.pairs / (t_done - t_start)
        offered = args.pairs / (t_sent - t_start)
        print(f"pipeline: {rate:,.0f} rewards/s (offered {offered:,.0f})", file=sys.stderr)

        lags: list[float] = []
        with PolicyReader(store, policy, poll_interval=0.005) as reader:
            for i in range(args.fresh):
                d, o = _events(i, policy, rng, "f")
                k = d.decision_id.encode()
                _produce(p, topics.decisions, k, d.to_bytes())
                p.flush(5)
                time.sleep(0.02)
                v = reader.version or 0
                t0 = time.perf_counter()
                _produce(p, topics.outcomes, k, o.to_bytes())
                p.flush(5)
                if reader.wait_for_version(v + 1, timeout=10):
                    lags.append(time.perf_counter() - t0)
                time.sleep(0.03)
        p50, p99 = _pct(lags, 0.5), _pct(lags, 0.99)

        rows = [
            (f"one worker, rewards/s (offered {offered:,.0f} pairs/s)", f"{rate:,.0f}", ">= 3,000"),
            ("bare Faust agent, events/s (same broker)", f"{raw:,.0f}", "-"),
            ("ratio rewards/s / raw events/s", f"{rate / raw:.2f}", ">= 0.40"),
            (f"freshness p50 ({len(lags)} samples)", f"{p50 * 1000:.0f} ms", "<= 300 ms"),
            ("freshness p99", f"{p99 * 1000:.0f} ms", "<= 1,000 ms"),
        ]
        print(
            f"\nPipeline benchmark ({args.pairs:,} decisions + outcomes, "
            f"raw {args.raw:,} events, 4 partitions)\n"
        )
        print("| measure | value | target |\n|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} |")
    finally:
        for worker in workers:
            worker.stop(timeout=15.0)
        if svc is not None:
            svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-agent":
        bootstrap, topic, count, workdir = sys.argv[2:6]
        sys.argv = [sys.argv[0], "worker"]
        bare_agent(bootstrap, topic, int(count), workdir)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=30_000, help="decisions (+ outcomes) to send")
    ap.add_argument("--rate", type=float, default=5_000, help="offered decisions per second")
    ap.add_argument("--raw", type=int, default=60_000, help="events for the bare agent")
    ap.add_argument("--fresh", type=int, default=200, help="freshness samples")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
