"""The demo driver: the whole loop on one machine, learning while you watch.

``run_demo(DemoOptions())`` starts the embedded broker and Redis, creates the
topics and the demo policy, starts a stream worker (``rl-commons worker`` as a
child process) and the dashboard when available, then drives a simulated LLM
proxy: requests from ``RequestGenerator`` go through ``SafeProviderSelector`` and
``LLMClient`` to ``SimulatedProviders``; decisions and outcomes flow through Kafka
to the worker, which learns in Redis. Meanwhile it

* raises the rollout (10% → 25% → 50% → 75% → 90%) each time the learned cohort's
  rewards are non-inferior to the baseline cohort's (``RolloutController``),
* changes the world halfway (llama gets worse) and measures how long the learned
  policy took to route around it (``ChangeWatch``),
* prints a progress line with live figures,

and ends with the cohort report (``stream_app.evaluation``), a learning-curve PNG
and a JSON summary in ``--out``. Everything it started is stopped on the way out,
also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from policy_store import (
    AlgorithmConfig,
    PolicyConfig,
    PolicyReader,
    RedisPolicyStore,
    Settings,
    make_config,
)
from producers.simulated import (
    FEATURE_NAMES,
    TASK_TOKENS,
    TASK_TYPES,
    RequestGenerator,
    SimulatedProviders,
    best_by_task,
    demo_reward_spec,
    request_features,
)

from ._curve import CurvePoint, plot_learning_curve
from ._procs import Child, wait_http
from ._progress import Progress
from ._rewards import RewardCollector
from ._rollout import DEFAULT_STEPS, RolloutController
from ._watch import ChangeWatch

CHANGES = {
    "llama-worse": ("llama", {"quality_delta": -0.3}, "llama's quality drops by 0.30"),
    "claude-cheaper": ("claude-3", {"price_factor": 0.2}, "claude-3 becomes 5× cheaper"),
    "none": (None, {}, "no change"),
}


@dataclass(frozen=True)
class DemoOptions:
    """Everything ``rl-commons demo`` can be told (defaults: about 2 minutes on 2 cores)."""

    requests: int = 3000
    duration: float = 75.0
    seed: int = 7
    plot: bool = True
    out: Path = Path("demo-output")
    policy: str = "provider_selection"
    baseline: str = "priority"  # "priority" rule, or the name of one provider to always call
    change: str = "llama-worse"
    change_at: float = 0.5  # fraction of the requests
    check_every: int = 250
    steps: tuple[float, ...] = DEFAULT_STEPS
    dashboard: bool = True
    external: bool = False  # use RL_COMMONS_* services instead of starting embedded ones
    start_worker: bool = True
    drain_timeout: float = 20.0
    max_lag: int = 150  # requests not yet rewarded by the stream before the proxy slows down

    def validate(self) -> None:
        if self.requests < 1:
            raise ValueError("--requests must be ≥ 1")
        if self.duration <= 0:
            raise ValueError("--duration must be > 0 seconds")
        if self.change not in CHANGES:
            raise ValueError(f"--change must be one of {sorted(CHANGES)}")
        if not 0.0 < self.change_at < 1.0:
            raise ValueError("change_at must be a fraction in (0, 1)")
        if self.check_every < 10:
            raise ValueError("check_every must be ≥ 10 requests")


class PriorityRule:
    """The proxy's existing routing, used as the baseline: a static rule by priority.

    ``speed`` and ``cost`` requests go to the cheap, fast model; everything else to the
    strongest one — what many proxies do before they learn anything.
    """

    def __init__(self, strong: str = "gpt-4", cheap: str = "llama") -> None:
        self.strong = strong
        self.cheap = cheap

    def select_provider(self, request: dict[str, Any]) -> str:
        return self.cheap if request.get("priority") in ("speed", "cost") else self.strong

    def __repr__(self) -> str:
        return f"priority rule (speed/cost → {self.cheap}, else → {self.strong})"


class AlwaysProvider:
    """Baseline that always calls one provider."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def select_provider(self, request: dict[str, Any]) -> str:
        return self.provider

    def __repr__(self) -> str:
        return f"always {self.provider}"


def demo_policy_config(name: str, arms: list[str], rollout: float) -> PolicyConfig:
    """The demo policy: LinUCB over the simulator's features, the demo reward spec."""
    return make_config(
        name=name,
        arms=tuple(arms),
        n_features=len(FEATURE_NAMES),
        # rewards here vary by about ±0.05, so a narrower confidence bonus than the default
        algorithm=AlgorithmConfig(name="linucb", alpha=0.2, epsilon=0.02),
        reward=demo_reward_spec().model_copy(update={"window_seconds": 60.0}),
        rollout_fraction=rollout,
        baseline_arm="gpt-4" if "gpt-4" in arms else arms[0],
        max_staleness_seconds=30.0,
    )


@dataclass
class DemoResult:
    """What the demo measured (also written to ``summary.json``)."""

    requests: int
    seconds: float
    rewards: int
    final_rollout: float
    rollout_steps: list[tuple[int, float]]
    change: str
    change_at_request: int | None
    adapted_after_requests: int | None
    adapted_after_seconds: float | None
    reward_rl: float | None
    reward_baseline: float | None
    reward_difference: dict[str, float] | None
    cost_reduction: dict[str, float] | None
    quality_difference: dict[str, float] | None
    quality_non_inferior: bool | None
    learned_beats_baseline: bool | None
    dashboard_url: str | None
    report_text: str
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM behaves like Ctrl-C so that the cleanup below always runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def _canonical_request(task: str) -> dict[str, Any]:
    tin, tout = TASK_TOKENS[task]
    return {"task_type": task, "prompt_tokens": int(tin), "max_tokens": int(tout)}


class Demo:
    """One run of the demo. Use ``run_demo``; the pieces are attributes for tests."""

    def __init__(
        self, opts: DemoOptions, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        opts.validate()
        self.opts = opts
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.children: list[Child] = []
        self._closers: list[tuple[str, Any]] = []
        self.services: Any = None
        self.dashboard_url: str | None = None
        self.pids: dict[str, int] = {}
        self._pids_path: Path | None = None

    # -- plumbing ----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def _on_exit(self, what: str, fn: Any) -> None:
        self._closers.append((what, fn))

    def _started(self, name: str, pid: int) -> None:
        """Record a process we started (``pids.json`` in --out lets tools check the cleanup)."""
        self.pids[name] = pid
        if self._pids_path is not None:
            self._pids_path.write_text(json.dumps(self.pids) + "\n")

    def _stop_all(self) -> None:
        errors = []
        for what, fn in reversed(self._closers):
            try:
                fn()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"{what}: {exc}")
        self._closers.clear()
        if errors:
            self.say("while stopping: " + "; ".join(errors))

    # -- setup -------------------------------------------------------------------------------
    def _settings(self) -> Settings:
        if self.opts.external:
            return Settings()
        from ..embedded import EmbeddedServices

        self.say("starting the embedded Kafka-protocol broker (Tansu) and redis-server …")
        self.services = EmbeddedServices.start()
        self._on_exit("embedded services", self._stop_services)
        self._started("broker", self.services.broker.proc.pid)
        self._started("redis", self.services.redis.proc.pid)
        return Settings(
            kafka_bootstrap=self.services.bootstrap,
            redis_url=self.services.redis_url,
            key_prefix="rlc",
            topic_prefix=f"rlc.demo{uuid.uuid4().hex[:6]}.",
        )

    def _stop_services(self) -> None:
        gc.collect()  # drop idle Kafka admin clients first, so they do not log the broker leaving
        self.services.stop()

    def _env(self, settings: Settings) -> dict[str, str]:
        env = {
            "RL_COMMONS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "RL_COMMONS_REDIS_URL": settings.redis_url,
            "RL_COMMONS_KEY_PREFIX": settings.key_prefix,
            "RL_COMMONS_TOPIC_PREFIX": settings.topic_prefix,
            "RL_COMMONS_POLICY": self.opts.policy,
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def setup(self, settings: Settings, arms: list[str]) -> RedisPolicyStore:
        """Topics and the demo policy (idempotent: an existing policy is kept)."""
        from producers import Topics, create_topics

        create_topics(
            settings.kafka_bootstrap,
            Topics(settings.topic_prefix),
            partitions=settings.topic_partitions,
            client_config=kafka_security(settings),
        )
        store = RedisPolicyStore.from_url(
            settings.redis_url, prefix=settings.key_prefix, **settings.redis_kwargs()
        )
        cfg = demo_policy_config(self.opts.policy, arms, self.opts.steps[0])
        store.create(cfg, exist_ok=True)
        return store

    def _start_worker(self, env: dict[str, str], log_dir: Path) -> None:
        from ..cli import build_parser

        if "worker" not in _subcommands(build_parser()):
            raise RuntimeError("this installation has no `rl-commons worker` command")
        from ..embedded import free_port

        args = ["worker", "--loglevel", "warning", "--web-port", str(free_port())]
        args += ["--datadir", str(log_dir / "worker-data")]
        child = Child.start("worker", args, env, log_dir)
        self.children.append(child)
        self._started("worker", child.proc.pid)
        self._on_exit("stream worker", child.stop)

    def _start_dashboard(self, env: dict[str, str], log_dir: Path) -> None:
        from ..cli import build_parser
        from ..embedded import free_port

        if not self.opts.dashboard or "dashboard" not in _subcommands(build_parser()):
            return
        port = free_port()
        child = Child.start(
            "dashboard", ["dashboard", "--host", "127.0.0.1", "--port", str(port)], env, log_dir
        )
        self.children.append(child)
        self._on_exit("dashboard", child.stop)
        self._started("dashboard", child.proc.pid)
        url = f"http://127.0.0.1:{port}/"
        if wait_http(url, 15.0, child):
            self.dashboard_url = url
        else:
            self.say(f"the dashboard did not start (see {child.log_path}); going on without it")

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> DemoResult:
        opts = self.opts
        out_dir = Path(opts.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        log_dir = out_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        self._pids_path = out_dir / "pids.json"
        self._pids_path.write_text("{}\n")
        t_start = time.monotonic()
        with _sigterm_as_interrupt():
            try:
                return self._run(out_dir, log_dir, t_start)
            finally:
                self._stop_all()
                self.say("stopped everything the demo started")

    def _run(self, out_dir: Path, log_dir: Path, t_start: float) -> DemoResult:
        opts = self.opts
        world = SimulatedProviders(seed=np.random.default_rng([opts.seed, 1]))
        gen = RequestGenerator(seed=np.random.default_rng([opts.seed, 2]))
        spec = demo_reward_spec()
        baseline = PriorityRule() if opts.baseline == "priority" else AlwaysProvider(opts.baseline)
        if opts.baseline != "priority":
            world.profile(opts.baseline)  # refuse an unknown provider early

        settings = self._settings()
        store = self.setup(settings, world.names)
        self._on_exit("redis client", store.client.close)
        env = self._env(settings)
        if opts.start_worker:
            self._start_worker(env, log_dir)
        self._start_dashboard(env, log_dir)

        from producers import Topics

        collector = RewardCollector(
            settings.kafka_bootstrap,
            Topics(settings.topic_prefix).rewards,
            opts.policy,
            since=time.time(),  # a policy kept from an earlier run has older rewards
            client_config=kafka_security(settings),
        ).start()
        self._on_exit("reward reader", collector.close)
        probe = PolicyReader(store, opts.policy, poll_interval=0.2, seed=opts.seed)
        self._on_exit("policy reader", probe.close)

        from ._proxy import SimulatedProxy

        proxy = SimulatedProxy(settings, opts.policy, world, baseline, seed=opts.seed)
        self._on_exit("proxy", proxy.close)

        self.say(
            f"policy {opts.policy!r}: arms {world.names}, {len(FEATURE_NAMES)} features, "
            f"baseline = {baseline!r}; rollout starts at {opts.steps[0]:.0%}"
        )
        if self.dashboard_url:
            self.say(f"dashboard: {self.dashboard_url}")
        self.say(
            f"driving {opts.requests} requests over ~{opts.duration:.0f} s "
            f"(seed {opts.seed}); world change: {CHANGES[opts.change][2]} "
            f"at request {int(opts.requests * opts.change_at)}"
        )
        loop = _Loop(self, world, gen, spec, store, probe, proxy, collector)
        asyncio.run(loop.run())
        collector_wait(collector, loop.served, opts.drain_timeout)
        seconds = time.monotonic() - t_start
        return self._finish(out_dir, loop, collector, seconds)

    # -- the end -----------------------------------------------------------------------------
    def _finish(
        self, out_dir: Path, loop: _Loop, collector: RewardCollector, seconds: float
    ) -> DemoResult:
        from ..evaluation import build_report

        rewards = collector.snapshot()
        if len(rewards) < loop.served:
            self.say(
                f"note: the stream rewarded {len(rewards)} of {loop.served} requests within "
                f"{self.opts.drain_timeout:.0f} s"
                + (
                    "; is a worker (`rl-commons worker`) running on these topics?"
                    if not rewards
                    else ""
                )
            )
        report = build_report(rewards, policy=self.opts.policy)
        text = report.to_text()
        files: dict[str, str] = {}
        (out_dir / "report.txt").write_text(text + "\n")
        files["report"] = str(out_dir / "report.txt")
        (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        files["report_json"] = str(out_dir / "report.json")

        reward_m = report.metrics["reward"]
        diff = reward_m.difference
        beats = None if not math.isfinite(diff.low) else bool(diff.low > 0)
        detected = loop.watch.detected if loop.watch else None

        if self.opts.plot:
            points = [
                CurvePoint(loop.index_of[r.decision_id], r.cohort, r.reward)
                for r in rewards
                if r.decision_id in loop.index_of
            ]
            try:
                files["learning_curve"] = plot_learning_curve(
                    str(out_dir / "learning_curve.png"),
                    points,
                    oracle=loop.oracle,
                    rollout=loop.rollout_steps,
                    change_at=loop.watch.at_request if loop.watch else None,
                    detected_at=(loop.watch.at_request + detected[0]) if detected else None,
                )
            except ImportError:
                self.say("matplotlib is not installed: no PNG (pip install 'rl-commons[plot]')")

        result = DemoResult(
            requests=loop.served,
            seconds=round(seconds, 1),
            rewards=len(rewards),
            final_rollout=loop.controller.fraction,
            rollout_steps=loop.rollout_steps,
            change=CHANGES[self.opts.change][2],
            change_at_request=loop.watch.at_request if loop.watch else None,
            adapted_after_requests=detected[0] if detected else None,
            adapted_after_seconds=round(detected[1], 1) if detected else None,
            reward_rl=reward_m.rl.mean if reward_m.rl.n else None,
            reward_baseline=reward_m.baseline.mean if reward_m.baseline.n else None,
            reward_difference=_finite(diff.to_dict()),
            cost_reduction=_finite(report.cost_reduction.to_dict()),
            quality_difference=_finite(report.quality_difference.to_dict()),
            quality_non_inferior=report.quality_non_inferior,
            learned_beats_baseline=beats,
            dashboard_url=self.dashboard_url,
            report_text=text,
            files=files,
        )
        (out_dir / "summary.json").write_text(result.to_json() + "\n")
        files["summary"] = str(out_dir / "summary.json")
        self._print_summary(result, loop)
        return result

    def _print_summary(self, r: DemoResult, loop: _Loop) -> None:
        p = lambda s="": print(s, file=self.out)  # noqa: E731
        p()
        p(r.report_text)
        p()
        p(f"requests {r.requests} in {r.seconds:.0f} s; rewards joined by the stream {r.rewards}")
        if loop.waited > 1.0:
            p(
                f"the proxy waited {loop.waited:.0f} s in all for the stream to catch up "
                f"(more than {self.opts.max_lag} requests behind: a busy machine)"
            )
        steps = " → ".join(f"{f:.0%}@{i}" for i, f in r.rollout_steps)
        p(f"rollout steps (fraction@request): {steps}")
        if loop.watch is not None:
            p(f"world change at request {loop.watch.at_request}: {r.change}; "
              f"{loop.watch.describe()}")  # fmt: skip
        d = r.reward_difference or {}
        verdict = {True: "YES", False: "NO", None: "UNDECIDED"}[r.learned_beats_baseline]
        p(
            f"learned cohort beats baseline on reward: {verdict} "
            f"(rl − baseline {_fmt(d.get('estimate'), '+.4f')}, "
            f"95% interval [{_fmt(d.get('low'), '+.4f')}, {_fmt(d.get('high'), '+.4f')}])"
        )
        for name, path in r.files.items():
            p(f"{name:<15}{path}")
        if r.dashboard_url:
            p(f"dashboard      {r.dashboard_url} (stopped with the demo; "
              "`rl-commons dev` + `rl-commons dashboard` keep one running)")  # fmt: skip


def kafka_security(settings: Settings) -> dict[str, Any]:
    """The security part (protocol, SASL, SSL) of the librdkafka config from settings."""
    from producers._kafka import producer_config

    return {
        k: v
        for k, v in producer_config(settings).items()
        if k.startswith(("security.", "sasl.", "ssl."))
    }


def _finite(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()}


def collector_wait(collector: RewardCollector, expected: int, timeout: float) -> None:
    """Wait until the stream has rewarded (almost) every request, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(collector) < expected:
        time.sleep(0.2)


class _Loop:
    """The request loop: pacing, rollout checks, probes, the world change, live figures."""

    def __init__(self, demo, world, gen, spec, store, probe, proxy, collector) -> None:
        self.demo = demo
        self.opts: DemoOptions = demo.opts
        self.world: SimulatedProviders = world
        self.gen: RequestGenerator = gen
        self.spec = spec
        self.store: RedisPolicyStore = store
        self.probe: PolicyReader = probe
        self.proxy = proxy
        self.collector: RewardCollector = collector
        self.controller = RolloutController(steps=self.opts.steps)
        self.rollout_steps: list[tuple[int, float]] = [(0, self.controller.fraction)]
        self.index_of: dict[str, int] = {}
        self.oracle: list[tuple[int, float]] = []
        self.served = 0
        self.errors = 0
        self.watch: ChangeWatch | None = None
        self.arms_rl: deque[str] = deque(maxlen=200)
        self.cohorts: Counter[str] = Counter()
        self._step_time = 0.0
        self.waited = 0.0
        self.t0 = time.monotonic()
        self._pace0 = self.t0

    def greedy_by_task(self) -> dict[str, str] | None:
        view = self.probe.view
        if view is None:
            return None
        out = {}
        for task in TASK_TYPES:
            x = np.asarray(request_features(_canonical_request(task)))
            out[task] = view.snapshot.arms[view.algorithm.greedy(view.snapshot, x)]
        return out

    async def run(self) -> None:
        opts = self.opts
        progress = Progress(opts.requests, self.demo.err)
        change_at = int(opts.requests * opts.change_at) if opts.change != "none" else None
        interval = opts.duration / opts.requests
        next_check = opts.check_every
        self.store.update_config(opts.policy, rollout_fraction=self.controller.fraction)
        try:
            for i in range(opts.requests):
                target = self._pace0 + i * interval
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if change_at is not None and i == change_at:
                    self._change(i, progress)
                req = self.gen.next()
                self.oracle.append((i, self.world.expected_reward(
                    self.world.best(req, self.spec), req, self.spec)))  # fmt: skip
                served = await self.proxy.handle(req)
                self.served += 1
                await self._keep_up()
                self.index_of[served.decision_id] = i
                self.cohorts[served.cohort] += 1
                if served.cohort == "rl":
                    self.arms_rl.append(served.arm)
                if served.error:
                    self.errors += 1
                if i + 1 >= next_check:
                    next_check += opts.check_every
                    self._check_children()
                    self._check_rollout(i + 1, progress)
                if self.watch is not None and self.watch.detected is None and i % 10 == 0:
                    greedy = self.greedy_by_task()
                    if greedy is not None and self.watch.observe(
                        i, time.monotonic() - self.t0, greedy
                    ):
                        progress.message(f"  ↳ {self.watch.describe()}")
                progress.update(i + 1, self._figures())
            progress.update(self.served, self._figures(), force=True)
        finally:
            progress.close()

    async def _keep_up(self) -> None:
        """Slow down while the stream is more than ``max_lag`` requests behind (a loaded
        machine): the demo is about learning from feedback, so it waits for the feedback —
        at most 2 s per request. The extra time is counted in ``waited``."""
        if self.served - len(self.collector) <= self.opts.max_lag:
            return
        start = time.monotonic()
        while self.served - len(self.collector) > self.opts.max_lag:
            if time.monotonic() - start > 2.0:
                break
            await asyncio.sleep(0.05)
        waited = time.monotonic() - start
        self.waited += waited
        self._pace0 += waited  # keep the pace from here on instead of rushing to catch up

    def _check_children(self) -> None:
        for child in self.demo.children:
            if child.name == "worker" and not child.running:
                raise RuntimeError(
                    f"the stream worker exited with code {child.proc.returncode}; "
                    f"its log ({child.log_path}) ends with:\n{child.tail()}"
                )

    def _change(self, i: int, progress: Progress) -> None:
        provider, changes, text = CHANGES[self.opts.change]
        greedy = self.greedy_by_task() or {}
        self.world.change(provider, **changes)
        new_best = best_by_task(self.spec, self.world.profiles)
        self.watch = ChangeWatch.start(
            i, time.monotonic() - self.t0, greedy, new_best, provider=provider
        )
        progress.message(f"request {i}: the world changed — {text}")

    def _check_rollout(self, done: int, progress: Progress) -> None:
        since = self._step_time
        rl, base = [], []
        for r in self.collector.snapshot():
            if r.decision_ts >= since:
                (rl if r.cohort == "rl" else base if r.cohort == "baseline" else []).append(
                    r.reward
                )
        decision = self.controller.decide(rl, base)
        if decision.action != "hold":
            self.store.update_config(self.opts.policy, rollout_fraction=decision.fraction)
            self.rollout_steps.append((done, decision.fraction))
            self._step_time = time.time()
            word = "raised" if decision.action == "up" else "lowered"
            progress.message(
                f"request {done}: rollout {word} {decision.previous:.0%} → "
                f"{decision.fraction:.0%} (rl − baseline one-sided {self.controller.level:.0%} "
                f"bounds [{decision.low:+.3f}, {decision.high:+.3f}], "
                f"n = {decision.n_rl}/{decision.n_baseline})"
            )

    def _figures(self) -> dict[str, str]:
        rewards = self.collector.snapshot()[-600:]
        by = {"rl": [], "baseline": []}
        for r in rewards:
            if r.cohort in by:
                by[r.cohort].append(r.reward)
        mean = {k: (float(np.mean(v)) if v else None) for k, v in by.items()}
        share = Counter(self.arms_rl)
        total = sum(share.values()) or 1
        mix = "/".join(f"{share.get(a, 0) / total:.0%}" for a in self.world.names)
        return {
            "rollout": f"{self.controller.fraction:.0%}",
            "reward rl": _fmt(mean["rl"]),
            "base": _fmt(mean["baseline"]),
            "rl mix " + "/".join(self.world.names): mix,
            "v": str(self.probe.version if self.probe.version is not None else "-"),
            "rewarded": str(len(self.collector)),
        }


def _subcommands(parser) -> set[str]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def run_demo(
    opts: DemoOptions | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> DemoResult:
    """Run the demo end to end (see the module docstring)."""
    return Demo(opts or DemoOptions(), out, err).run()
