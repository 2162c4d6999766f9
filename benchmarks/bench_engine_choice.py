"""Engine choice: the batch engine against a Faust-native batched driver, same run, same rates.

    python benchmarks/bench_engine_choice.py                    # 5,000 and 10,000 pairs/s
    python benchmarks/bench_engine_choice.py --pairs 30000 --runs 3 --out /tmp/engine.md
    python benchmarks/bench_engine_choice.py --send faust --inflight 1   # driver variants

Uses RL_COMMONS_KAFKA_BOOTSTRAP / RL_COMMONS_REDIS_URL when both are set, otherwise starts
the embedded broker and Redis. Per rate and run each engine gets fresh topics, key prefix
and process (the embedded broker slows as partitions fill, docs/stream.md), then
bench_pipeline's live-traffic measurement: ``--pairs`` decisions, each followed by its
outcome, produced at the rate; rewards/s = pairs / (first produced -> last applied, read
from Redis as the sum of the arms' n), whose final count must equal the pairs sent. The
engines take turns (order alternating per run); the table gives every run, the medians
and the ratio faust/batch.

- batch: ``rl-commons worker`` (``BatchEngine``: a confluent-kafka consumer thread that
  joins, publishes the rewards, reads them back and applies them in batches).
- faust: a Faust app (bench_pipeline's ``FAST_REJOIN``, a 10 ms fetch wait) whose agent
  reads decisions + outcomes with ``stream.take_events(--batch, --within)`` into the pure
  join (``JoinTables.handle``; tables restored from ``<app id>-join-changelog``). Each
  batch's outputs go, in order, to a finisher task (``--inflight`` batches may wait while
  the agent joins the next): rewards + DLQ acknowledged -> ``Updater.apply`` -> table
  changes to the changelog, acknowledged -> the batch's events acked (offsets held until
  then). A timer sweeps closed windows through the same finisher. ``--send kafka`` uses
  the engine's producer (``ConfluentClients.producer``), ``--send faust`` Faust topics.

Also reported: the bare Faust agent's events/s (bench_pipeline's raw measurement, before and
after) / 2 events per reward, the ceiling of any driver on Faust's per-event path, and the
Faust driver's time per batch by phase. The driver is a prototype that lives here (run as
``bench_engine_choice.py --faust-driver APP_ID WORKDIR OPTIONS``); run_all leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_pipeline as bp  # noqa: E402 - its helpers: events, producer, worker, raw agent

AGENT_PHASES = ("intake", "join", "blocked")  # the agent's time, per batch
FINISH_PHASES = ("send", "apply", "changelog")  # the finisher's time (concurrent with the agent)


# -- the Faust-native driver (run as: --faust-driver APP_ID WORKDIR OPTIONS-JSON) -----------
def _short_fetch_transport(fetch_max_wait_ms: int) -> type:
    """Faust's aiokafka transport without faust-streaming's hard-coded 1.5 s fetch wait."""
    from faust.transport.drivers import aiokafka as fa

    class _ConsumerThread(fa.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport):  # type: ignore[override]
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by consumer.start()
            return consumer

    class _Consumer(fa.Consumer):
        def _new_consumer_thread(self):  # type: ignore[override]
            return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(fa.Transport):
        Consumer = _Consumer

    return _Transport


def faust_driver(app_id: str, workdir: str, opts: dict) -> None:
    """Settings from the environment; ``opts``: batch, within, send, linger, inflight."""
    import asyncio
    import atexit

    import faust

    from policy_store import RedisPolicyStore, Settings, StoreUnavailableError
    from producers import Topics
    from stream_app import _batch_join as bj
    from stream_app._batch_join import DECISIONS, OUTCOMES, JoinTables, Outputs, Source
    from stream_app._clients import ConfluentClients
    from stream_app._join import DEFAULT_WINDOW, TOMBSTONE_SECONDS
    from stream_app._metrics import HealthBuffer, WorkerMetrics
    from stream_app._updater import Updater
    from stream_app.aggregates import RedisAggregates
    from stream_app.app import ConfigCache

    settings = Settings()
    topics = Topics.from_settings(settings)
    store = RedisPolicyStore.from_settings(settings)
    sink = RedisAggregates(store.client, store.prefix)  # as the worker: aggregates beside it
    clients = ConfluentClients(settings, topics)  # the engine's producer, changelog, restore
    changelog = f"{app_id}-join-changelog"
    clients.ensure_changelog(changelog)
    metrics, health, configs = WorkerMetrics(), HealthBuffer(), ConfigCache(store)
    join = JoinTables(
        configs.get,
        default_window=DEFAULT_WINDOW,
        retention=TOMBSTONE_SECONDS,
        metrics=metrics,
        health=health,
    )
    updater = Updater(store, metrics, sink=sink)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=workdir,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        producer_linger=opts["linger"],
        broker_commit_every=100_000,
        **bp.FAST_REJOIN,
    )
    app._new_transport = lambda: _short_fetch_transport(10)(app.conf.broker_consumer, app)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(topics.decisions, topics.outcomes, **raw)
    out_topics = {t: app.topic(t, **raw) for t in (topics.rewards, topics.dlq, changelog)}
    producer, errors = None, []
    if opts["send"] == "kafka":
        producer = clients.producer(lambda e, m: e is None or errors.append(str(e)))
    # Table writes happen on the event loop (join, sweep) in order; what they produce goes
    # through this queue to one finisher, so changelog records keep that order.
    queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, opts["inflight"]))
    phases = dict.fromkeys((*AGENT_PHASES, *FINISH_PHASES, "batches", "events"), 0.0)
    atexit.register(lambda: print("PHASES " + json.dumps(phases), flush=True))

    async def emit(records: list[tuple[str, bytes, bytes | None, int | None]]) -> None:
        """Send records and wait until the broker acknowledged every one."""
        if not records:
            return
        if producer is None:
            futs = [await out_topics[t].send(key=k, value=v, partition=p) for t, k, v, p in records]
            await app.producer.flush()
            await asyncio.gather(*futs)
            return
        for t, k, v, p in records:
            while True:
                try:
                    producer.produce(t, v, k, -1 if p is None else p)
                    break
                except BufferError:
                    producer.poll(0.01)
        left = await asyncio.get_running_loop().run_in_executor(None, producer.flush, 60)
        if left or errors:
            raise RuntimeError(f"delivery failed ({left} left): {errors[:3]}")

    async def apply_until_done(rewards: list):
        """``Updater.apply`` off the loop, retried with backoff while the store is down."""
        delay = 0.1
        while True:
            try:
                return await app.loop.run_in_executor(None, updater.apply, rewards)
            except StoreUnavailableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def dlq(records) -> list:
        return [(topics.dlq, (d.key or "").encode(), d.to_bytes(), None) for d in records]

    async def finish(out: Outputs, events: list) -> None:
        """Rewards + DLQ (acknowledged) -> apply -> table changes (acknowledged) -> ack."""
        t0 = time.perf_counter()
        rw = [(topics.rewards, r.decision_id.encode(), r.to_bytes(), None) for r in out.rewards]
        await emit(rw + dlq(out.dlq))
        t1 = time.perf_counter()
        if out.rewards:
            result = await apply_until_done(out.rewards)
            now = time.time()
            src = Source(topics.rewards, None, None, None)  # type: ignore[arg-type]
            bad = [
                join.dlq_record(*x[1:], x[0].to_bytes(), src, now, x[0].policy)
                for x in result.rejected
            ]
            await emit(dlq(bad))
        t2 = time.perf_counter()
        await emit(
            [(changelog, k.encode(), bj.encode_entry(v), p) for (p, k), v in out.changes.items()]
        )
        join.flush_counts()
        for ev in events:
            ev.ack()
        for k, dt in zip(FINISH_PHASES, (t1 - t0, t2 - t1, time.perf_counter() - t2), strict=True):
            phases[k] += dt

    @app.task
    async def _finisher() -> None:
        while True:
            out, events = await queue.get()
            try:
                await finish(out, events)
            except Exception as exc:
                await app.crash(exc)
                return

    @app.on_partitions_assigned.connect
    async def _assigned(sender, assigned, **kwargs) -> None:
        owned = {tp.partition for tp in assigned if tp.topic in (topics.decisions, topics.outcomes)}
        for p in set(join.tables) - owned:
            join.drop(p)
        missing = sorted(owned - set(join.tables))
        if missing:
            loop = asyncio.get_running_loop()
            restored = await loop.run_in_executor(None, clients.restore, changelog, missing, 120.0)
            for p in missing:
                join.assign(p, restored[p])

    @app.agent(source, name="join")
    async def drive(stream):
        t_end = None
        async for events in stream.take_events(opts["batch"], within=opts["within"]):
            t0 = time.perf_counter()
            now, out = time.time(), Outputs()
            for ev in events:
                m = ev.message
                m.incref()  # hold every offset until the batch is applied and logged
                kind = DECISIONS if m.topic == topics.decisions else OUTCOMES
                src = Source(m.topic, m.partition, m.offset, m.key)
                join.handle(kind, m.value or b"", src, now, out)
            t1 = time.perf_counter()
            await queue.put((out, events))
            t2 = time.perf_counter()
            if t_end is not None and t0 - t_end < 0.5:  # idle gaps left out
                for k, dt in zip(AGENT_PHASES, (t0 - t_end, t1 - t0, t2 - t1), strict=True):
                    phases[k] += dt
                phases["batches"] += 1
                phases["events"] += len(events)
            t_end = t2

    @app.timer(1.0, name="sweep")
    async def _sweep() -> None:
        out = Outputs()
        if not app.rebalancing and join.sweep(time.time(), out):
            await queue.put((out, []))

    @app.timer(1.0, name="flush_health")
    async def _health() -> None:
        await app.loop.run_in_executor(None, health.flush, sink)

    @app.timer(5.0, name="refresh_configs")
    async def _configs() -> None:
        await asyncio.get_running_loop().run_in_executor(None, configs.refresh)

    worker = faust.Worker(app, loglevel="warning", redirect_stdouts=False, quiet=True)
    worker.spinner = None  # as in `rl-commons worker`: no DEBUG root logger
    worker.execute_from_commandline()


# -- one live-traffic measurement ------------------------------------------------------------
def _start_engine(engine: str, settings, app_id: str, workdir: Path, args):
    """The engine's process (logging to ``<workdir>/worker.log``) and how to stop it."""
    from stream_app.dev import stop_process_group

    if engine == "batch":  # `rl-commons worker` run from this tree (cwd=ROOT)
        w = bp._worker(settings, app_id, str(workdir))
        return w.proc, lambda: w.stop(15.0)
    opts = {k: getattr(args, k) for k in ("batch", "within", "send", "linger", "inflight")}
    cmd = [sys.executable, __file__, "--faust-driver", app_id, str(workdir), json.dumps(opts)]
    env = {**os.environ, **settings.child_env(), "PYTHONUNBUFFERED": "1"}
    with open(workdir / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    return proc, lambda: stop_process_group(proc, 15.0)


def live(engine: str, bootstrap: str, redis_url: str, pairs: list, rate: float, tmp: str, args):
    """(rewards/s, offered pairs/s, phases) of one engine on fresh topics; checks the count."""
    from policy_store import RedisPolicyStore, Settings, make_config
    from producers import Topics, create_topics

    u = uuid.uuid4().hex[:6]
    topics, key_prefix, policy = Topics(prefix=f"ec{u}."), f"ec{u}", "route"
    create_topics(Settings(kafka_bootstrap=bootstrap), topics, partitions=4)
    store = RedisPolicyStore.from_url(redis_url, prefix=key_prefix)
    store.create(make_config(name=policy, arms=bp.ARMS, n_features=bp.D))
    conn = {"kafka_bootstrap": bootstrap, "redis_url": redis_url}
    settings = Settings(**conn, key_prefix=key_prefix, topic_prefix=topics.prefix)
    workdir = Path(tmp) / f"{engine}-{u}"
    workdir.mkdir()
    proc, stop = _start_engine(engine, settings, f"ec-{engine}-{u}", workdir, args)
    p = bp._producer(bootstrap)
    n = len(pairs) - 1
    try:
        k, dv, ov = pairs[0]  # warm-up: joined, assigned, one reward applied
        bp._produce(p, topics.decisions, k, dv)
        bp._produce(p, topics.outcomes, k, ov)
        p.flush(10)
        bp._wait(lambda: bp._total_n(store, policy) >= 1, 120, proc, str(workdir))
        t_start = time.perf_counter()
        for i, (k, dv, ov) in enumerate(pairs[1:], 1):
            bp._produce(p, topics.decisions, k, dv)
            bp._produce(p, topics.outcomes, k, ov)
            if i % 100 == 0:
                p.poll(0)
                ahead = t_start + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        p.flush(60)
        t_sent = time.perf_counter()
        bp._wait(lambda: bp._total_n(store, policy) >= n + 1, 600, proc, str(workdir))
        t_done = time.perf_counter()
        time.sleep(0.5)
        final = bp._total_n(store, policy)
        if final != n + 1:
            raise RuntimeError(f"{engine}: {final} rewards applied, {n + 1} pairs sent")
        rates = n / (t_done - t_start), n / (t_sent - t_start)
    finally:
        stop()
    log = (workdir / "worker.log").read_text(errors="replace").splitlines()  # the driver's phases
    phases = next((json.loads(x[7:]) for x in reversed(log) if x.startswith("PHASES ")), None)
    return (*rates, phases)


# -- the whole comparison -----------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def measure(args: argparse.Namespace) -> tuple[list[float], dict[float, dict[str, list]]]:
    """Bare-agent events/s (before and after) and, per rate, each engine's runs."""
    bootstrap = os.environ.get("RL_COMMONS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("RL_COMMONS_REDIS_URL")
    svc = None
    if not (bootstrap and redis_url):
        from stream_app.dev import EmbeddedServices

        svc = EmbeddedServices.start()
        bootstrap, redis_url = svc.bootstrap, svc.redis_url
    tmp = tempfile.mkdtemp(prefix="bench-engine-")
    try:
        rng = random.Random(2)
        events = [bp._events(i, "route", rng, "e") for i in range(args.pairs + 1)]
        pairs = [(d.decision_id.encode(), d.to_bytes(), o.to_bytes()) for d, o in events]
        raws = [bp.measure_raw(bootstrap, args.raw, tmp)]
        print(f"raw Faust agent: {raws[-1]:,.0f} events/s", file=sys.stderr)
        results: dict[float, dict[str, list]] = {}
        for rate in args.rates:
            results[rate] = {"batch": [], "faust": []}
            for r in range(args.runs):
                for engine in ("batch", "faust")[:: 1 if r % 2 == 0 else -1]:
                    got = live(engine, bootstrap, redis_url, pairs, rate, tmp, args)
                    results[rate][engine].append(got)
                    msg = f"rate {rate:,.0f} run {r + 1} {engine}: {got[0]:,.0f} rewards/s"
                    print(f"{msg} (offered {got[1]:,.0f})", file=sys.stderr)
        raws.append(bp.measure_raw(bootstrap, args.raw, tmp))
        print(f"raw Faust agent: {raws[-1]:,.0f} events/s", file=sys.stderr)
        return raws, results
    finally:
        if svc is not None:
            svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, raws: list[float], results: dict, seconds: float) -> str:
    lines = [
        f"Engine choice ({args.pairs:,} decisions + outcomes per run, 4 partitions, {args.runs} "
        f"runs per rate and engine, order alternating, {seconds:.0f} s). Faust driver: "
        f"take_events({args.batch}, within={args.within}), sends via {args.send}, "
        f"producer_linger={args.linger}, {args.inflight} batch(es) queued for the finisher.",
        "",
        "| offered pairs/s | run | batch engine rewards/s | Faust driver rewards/s | faust/batch |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for rate, by in results.items():
        for r, (b, f) in enumerate(zip(by["batch"], by["faust"], strict=True), 1):
            lines.append(
                f"| {_fmt(rate)} (sent {_fmt(b[1])} / {_fmt(f[1])}) | {r} | {_fmt(b[0])} | "
                f"{_fmt(f[0])} | {f[0] / b[0]:.2f} |"
            )
        mb = statistics.median(x[0] for x in by["batch"])
        mf = statistics.median(x[0] for x in by["faust"])
        ratios.append(mf / mb)
        lines.append(
            f"| **{_fmt(rate)}** | **median** | **{_fmt(mb)}** | **{_fmt(mf)}** | "
            f"**{mf / mb:.2f}** |"
        )
    lines += [
        "",
        f"Bare Faust agent (bench_pipeline's raw measurement, before / after): "
        f"{' / '.join(_fmt(x) for x in raws)} events/s; ceiling of a driver on Faust's per-event "
        f"path = median / 2 events per reward = **{_fmt(statistics.median(raws) / 2)} rewards/s**.",
        "",
        "Faust driver, mean ms per batch over all runs of a rate (agent: intake = Faust "
        "filling the take buffer, join, blocked = waiting for the finisher's queue; "
        "finisher, concurrently: send = rewards acknowledged, apply = Redis, changelog):",
        "",
        "| offered pairs/s | events/batch | " + " | ".join((*AGENT_PHASES, *FINISH_PHASES)) + " |",
        "|---" * 8 + "|",
    ]
    for rate, by in results.items():
        tot: dict[str, float] = {}
        for x in by["faust"]:
            for k, v in (x[2] or {}).items():
                tot[k] = tot.get(k, 0.0) + v
        nb = max(tot.get("batches", 0.0), 1.0)
        cells = [f"{tot.get(k, 0.0) / nb * 1000:.1f}" for k in (*AGENT_PHASES, *FINISH_PHASES)]
        lines.append(
            f"| {_fmt(rate)} | {tot.get('events', 0.0) / nb:.0f} | " + " | ".join(cells) + " |"
        )
    verdict = "reaches" if min(ratios) >= 0.8 else "does not reach"
    lines += [
        "",
        f"Median faust/batch per rate: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"the Faust driver {verdict} 0.8× of the batch engine.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--faust-driver":
        app_id, workdir, opts = sys.argv[2:5]
        sys.argv = [sys.argv[0], "worker"]
        faust_driver(app_id, workdir, json.loads(opts))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20_000, help="decisions (+ outcomes) per run")
    ap.add_argument("--rates", type=float, nargs="+", default=[5_000, 10_000], help="pairs/s")
    ap.add_argument("--runs", type=int, default=3, help="runs per engine and rate")
    ap.add_argument("--raw", type=int, default=40_000, help="events for the bare agent")
    ap.add_argument("--batch", type=int, default=2000, help="Faust driver: take_events max")
    ap.add_argument("--within", type=float, default=0.1, help="Faust driver: take_events within")
    ap.add_argument("--send", choices=["faust", "kafka"], default="kafka", help="Faust driver")
    ap.add_argument("--linger", type=float, default=0.05, help="Faust driver: producer_linger")
    ap.add_argument("--inflight", type=int, default=2, help="Faust driver: finisher queue (>= 1)")
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args()
    t0 = time.monotonic()
    raws, results = measure(args)
    text = report(args, raws, results, time.monotonic() - t0)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
