"""The demo's request loop: pacing, rollout steps, the world change and its detection,
live figures and, under a constrained objective, the multiplier λ the proxies see.
``Demo`` builds it and runs it with ``asyncio.run(loop.run())``."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from typing import Any

import numpy as np

from policy_store import PolicyReader, RedisPolicyStore, RewardSpec

from ..embedded import EmbeddedServiceError
from ..simulated import (
    TASK_TOKENS,
    TASK_TYPES,
    RequestGenerator,
    SimulatedProviders,
    best_by_task,
    request_features,
)
from ._options import CHANGES, DemoOptions
from ._progress import Progress
from ._rewards import RewardCollector
from ._rollout import RolloutController
from ._watch import ChangeWatch


def fmt_number(v: float | None, spec: str = ".3f") -> str:
    """``v`` formatted, or "-" when missing or not finite."""
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def _canonical_request(task: str) -> dict[str, Any]:
    tin, tout = TASK_TOKENS[task]
    return {"task_type": task, "prompt_tokens": int(tin), "max_tokens": int(tout)}


class RequestLoop:
    """The request loop: pacing, rollout checks, probes, the world change, live figures."""

    def __init__(
        self,
        demo: Any,
        world: SimulatedProviders,
        gen: RequestGenerator,
        spec: RewardSpec,
        store: RedisPolicyStore,
        probe: PolicyReader,
        proxy: Any,
        collector: RewardCollector,
    ) -> None:
        self.demo = demo  # the Demo: options, output streams, child processes
        self.opts: DemoOptions = demo.opts
        self.world = world
        self.gen = gen
        self.spec = spec
        self.store = store
        self.probe = probe
        self.proxy = proxy  # SimulatedProxy: ``await handle(request) -> Served``
        self.collector = collector
        self.controller = RolloutController(steps=self.opts.ladder)
        self.rollout_steps: list[tuple[int, float]] = [(0, self.controller.fraction)]
        self.index_of: dict[str, int] = {}
        self.oracle: list[tuple[int, float]] = []
        #: (request, λ of the snapshot the proxies select with), every ``check_every`` requests
        self.duals: list[tuple[int, float]] = []
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
        change = opts.world_change
        change_at = int(opts.requests * opts.change_at) if change != "none" else None
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
                if not opts.constrained:  # the best provider by the weighted reward
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
                    self._record_dual(i + 1)
                if self.watch is not None and self.watch.detected is None and i % 10 == 0:
                    greedy = self.greedy_by_task()
                    if greedy is not None and self.watch.observe(
                        i, time.monotonic() - self.t0, greedy
                    ):
                        progress.message(f"  ↳ {self.watch.describe()}")
                progress.update(i + 1, self._figures())
            self._record_dual(self.served)
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
                raise EmbeddedServiceError(
                    f"the stream worker exited with code {child.proc.returncode}; "
                    f"its log ({child.log_path}) ends with:\n{child.tail()}"
                )

    def _change(self, i: int, progress: Progress) -> None:
        provider, changes, text = CHANGES[self.opts.world_change]
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

    def dual(self) -> float | None:
        """λ of the proxies' current snapshot (None before the first one)."""
        view = self.probe.view
        return None if view is None else float(view.snapshot.dual)

    def _record_dual(self, done: int) -> None:
        if self.opts.constrained and (lam := self.dual()) is not None:
            if not self.duals or self.duals[-1][0] != done:
                self.duals.append((done, lam))

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
        figures = {
            "rollout": f"{self.controller.fraction:.0%}",
            "reward rl": fmt_number(mean["rl"]),
            "base": fmt_number(mean["baseline"]),
            "rl mix " + "/".join(self.world.names): mix,
            "v": str(self.probe.version if self.probe.version is not None else "-"),
            "rewarded": str(len(self.collector)),
        }
        if self.opts.constrained:
            figures["λ"] = fmt_number(self.dual(), ".2f")
        return figures
