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
* under a constrained objective (``--objective quality-floor`` / ``budget``: the
  ``premium`` world, baseline always gpt-4, a fixed rollout) records the multiplier λ
  the worker moves and the proxies select with,
* prints a progress line with live figures,

and ends with the cohort report (``stream_app.ops.report``, with its constraint section
for a constrained objective), a learning-curve PNG
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from policy_store import (
    PolicyReader,
    RedisPolicyStore,
    Settings,
)
from policy_store.evaluation import json_safe
from producers import Topics, create_topics, kafka_config

from ..embedded import EmbeddedServices, free_port
from ..simulated import (
    FEATURE_NAMES,
    RequestGenerator,
    SimulatedProviders,
    demo_reward_spec,
)
from ._curve import CurvePoint, plot_learning_curve
from ._loop import RequestLoop, fmt_number
from ._options import CHANGES, AlwaysProvider, DemoOptions, PriorityRule, demo_policy_config
from ._procs import Child, wait_http
from ._rewards import RewardCollector, collector_wait, headline


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
    objective: dict[str, Any] | None  # the objective of the policy as stored in Redis
    constraint: dict[str, Any] | None  # the report's constraint section (None: weighted)
    dual_history: list[tuple[int, float]]  # (request, λ the proxies selected with)
    dual_end: float | None  # λ in the policy's state at the end
    report_from: int  # the first request the report covers (after the warm-up)
    whole_run: dict[str, Any] | None  # the headline figures over every request (warm-up kept)
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
        demo = settings.model_copy(update={"policy": self.opts.policy})
        return {**demo.child_env(), "PYTHONUNBUFFERED": "1"}

    def setup(self, settings: Settings, arms: list[str]) -> RedisPolicyStore:
        """Topics and the demo policy (idempotent: an existing policy is kept)."""
        from stream_app import ensure_record_topics

        create_topics(settings)
        ensure_record_topics(settings)  # the policies topic, rewards retained (rebuild)
        store = RedisPolicyStore.from_settings(settings)
        opts = self.opts
        cfg = demo_policy_config(
            opts.policy,
            arms,
            opts.ladder[0],
            opts.policy_objective(),
            baseline_arm=opts.baseline_name if opts.constrained else None,
        )
        store.create(cfg, exist_ok=True)  # recorded by the store when it creates it
        return store

    def _spawn(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
        """Start ``rl-commons <args>`` as a child that is stopped on the way out."""
        child = Child.start(name, args, env, log_dir)
        self.children.append(child)
        self._started(name, child.proc.pid)
        self._on_exit(name, child.stop)
        return child

    def _start_worker(self, env: dict[str, str], log_dir: Path) -> None:
        args = ["worker", "--loglevel", "warning", "--web-port", str(free_port())]
        args += ["--datadir", str(log_dir / "worker-data")]
        self._spawn("worker", args, env, log_dir)

    def _start_dashboard(self, env: dict[str, str], log_dir: Path) -> None:
        if not self.opts.dashboard:
            return
        port = free_port()
        args = ["dashboard", "--host", "127.0.0.1", "--port", str(port)]
        child = self._spawn("dashboard", args, env, log_dir)
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
        world = SimulatedProviders(opts.profiles(), seed=np.random.default_rng([opts.seed, 1]))
        gen = RequestGenerator(seed=np.random.default_rng([opts.seed, 2]))
        spec = demo_reward_spec()
        name = opts.baseline_name
        baseline = PriorityRule() if name == "priority" else AlwaysProvider(name)
        if name != "priority":
            world.profile(name)  # refuse an unknown provider early

        settings = self._settings()
        store = self.setup(settings, world.names)
        self._on_exit("redis client", store.client.close)
        env = self._env(settings)
        if opts.start_worker:
            self._start_worker(env, log_dir)
        self._start_dashboard(env, log_dir)

        collector = RewardCollector(
            settings.kafka_bootstrap,
            Topics.from_settings(settings).rewards,
            opts.policy,
            since=time.time(),  # a policy kept from an earlier run has older rewards
            client_config=kafka_config(settings),
        ).start()
        self._on_exit("reward reader", collector.close)
        probe = PolicyReader(store, opts.policy, poll_interval=0.2, seed=opts.seed)
        self._on_exit("policy reader", probe.close)

        from ._proxy import SimulatedProxy

        proxy = SimulatedProxy(settings, opts.policy, world, baseline, seed=opts.seed)
        self._on_exit("proxy", proxy.close)

        self.say(
            f"policy {opts.policy!r}: arms {world.names}, {len(FEATURE_NAMES)} features, "
            f"baseline = {baseline!r}; rollout starts at {opts.ladder[0]:.0%}"
            + (f"; objective {opts.objective}" if opts.constrained else "")
        )
        if self.dashboard_url:
            self.say(f"dashboard: {self.dashboard_url}")
        self.say(
            f"driving {opts.requests} requests over ~{opts.duration:.0f} s "
            f"(seed {opts.seed}); world change: {CHANGES[opts.world_change][2]}"
            + (
                f" at request {int(opts.requests * opts.change_at)}"
                if opts.world_change != "none"
                else ""
            )
        )
        loop = RequestLoop(self, world, gen, spec, store, probe, proxy, collector)
        asyncio.run(loop.run())
        collector_wait(collector, loop.served, opts.drain_timeout)
        seconds = time.monotonic() - t_start
        return self._finish(out_dir, loop, collector, seconds)

    # -- the end -----------------------------------------------------------------------------
    def _finish(
        self, out_dir: Path, loop: RequestLoop, collector: RewardCollector, seconds: float
    ) -> DemoResult:
        from stream_app.ops.report import build_report, with_constraint

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
        config = loop.store.get_config(self.opts.policy)  # as the proxies and the worker saw it
        start = self.opts.report_from

        def cohorts(since: int) -> Any:
            measured = [r for r in rewards if loop.index_of.get(r.decision_id, -1) >= since]
            kept = measured if since else rewards
            built = build_report(kept, policy=self.opts.policy, margin=self.opts.report_margin)
            return with_constraint(built, config)

        report = cohorts(start)
        whole = headline(cohorts(0)) if start else None
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
            change=CHANGES[self.opts.world_change][2],
            change_at_request=loop.watch.at_request if loop.watch else None,
            adapted_after_requests=detected[0] if detected else None,
            adapted_after_seconds=round(detected[1], 1) if detected else None,
            reward_rl=reward_m.rl.mean if reward_m.rl.n else None,
            reward_baseline=reward_m.baseline.mean if reward_m.baseline.n else None,
            reward_difference=json_safe(diff.to_dict()),
            cost_reduction=json_safe(report.cost_reduction.to_dict()),
            quality_difference=json_safe(report.quality_difference.to_dict()),
            quality_non_inferior=report.quality_non_inferior,
            learned_beats_baseline=beats,
            dashboard_url=self.dashboard_url,
            objective=config.objective.model_dump(exclude_none=True),
            constraint=report.constraint.to_dict() if report.constraint is not None else None,
            dual_history=loop.duals,
            dual_end=self._dual_end(loop),
            report_from=start,
            whole_run=whole,
            report_text=text,
            files=files,
        )
        (out_dir / "summary.json").write_text(result.to_json() + "\n")
        files["summary"] = str(out_dir / "summary.json")
        self._print_summary(result, loop)
        return result

    def _dual_end(self, loop: RequestLoop) -> float | None:
        """λ in the policy's state at the end (None for the weighted objective)."""
        if not self.opts.constrained:
            return None
        return float(loop.store.read_state(self.opts.policy).dual)

    def _print_summary(self, r: DemoResult, loop: RequestLoop) -> None:
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
        if r.whole_run is not None:
            w, q = r.whole_run, r.whole_run["quality_difference"]
            p(f"the report covers requests {r.report_from}–{r.requests} (after the warm-up); "
              f"over every request: quality difference {fmt_number(q.get('estimate'), '+.4f')} "
              f"[{fmt_number(q.get('low'), '+.4f')}, {fmt_number(q.get('high'), '+.4f')}], "
              f"constraint {str(w['verdict']).upper()}")  # fmt: skip
        steps = " → ".join(f"{f:.0%}@{i}" for i, f in r.rollout_steps)
        p(f"rollout steps (fraction@request): {steps}")
        if loop.watch is not None:
            p(f"world change at request {loop.watch.at_request}: {r.change}; "
              f"{loop.watch.describe()}")  # fmt: skip
        d = r.reward_difference or {}
        verdict = {True: "YES", False: "NO", None: "UNDECIDED"}[r.learned_beats_baseline]
        p(
            f"learned cohort beats baseline on reward: {verdict} "
            f"(rl − baseline {fmt_number(d.get('estimate'), '+.4f')}, 95% interval "
            f"[{fmt_number(d.get('low'), '+.4f')}, {fmt_number(d.get('high'), '+.4f')}])"
        )
        if r.dual_history:
            every = max(1, len(r.dual_history) // 8)
            path = " → ".join(f"{lam:.2f}@{i}" for i, lam in r.dual_history[::every])
            p(f"multiplier λ (value@request): {path}; at the end {fmt_number(r.dual_end, '.2f')}")
        if r.constraint is not None:
            red = r.cost_reduction or {}
            p(
                f"{self.opts.objective}: cost reduction {fmt_number(red.get('estimate'), '.1%')} "
                f"[{fmt_number(red.get('low'), '.1%')}, {fmt_number(red.get('high'), '.1%')}], "
                f"constraint {str(r.constraint['verdict']).upper()}"
            )
        for name, path in r.files.items():
            p(f"{name:<15}{path}")
        if r.dashboard_url:
            p(f"dashboard      {r.dashboard_url} (stopped with the demo; "
              "`rl-commons dev` + `rl-commons dashboard` keep one running)")  # fmt: skip


def run_demo(
    opts: DemoOptions | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> DemoResult:
    """Run the demo end to end (see the module docstring)."""
    return Demo(opts or DemoOptions(), out, err).run()
