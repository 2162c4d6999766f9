"""A constrained objective's multiplier through the pipeline: two proxies publish decisions
and outcomes to Kafka, one worker applies the rewards and moves λ in Redis atomically
with them, and both proxies take the new λ from their snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from policy_store import Objective, PolicyReader, RewardSpec, make_config, objective_weights
from producers import ProviderSelector
from tests._worker_proc import WorkerProcess
from tests.integration._stream_helpers import ARMS, D, wait_for

pytestmark = pytest.mark.integration

COST = {"gpt-4": 0.06, "claude-3": 0.03, "llama": 0.005}


def test_worker_moves_the_multiplier_and_every_proxy_sees_it(
    settings, redis_store, unique, tmp_path
):
    spec = RewardSpec(cost_cap=0.1, latency_cap_ms=2000.0)
    objective = Objective(kind="quality_floor", quality_floor=0.9, dual_step=0.5)
    redis_store.create(
        make_config(name="qf", arms=ARMS, n_features=D, reward=spec, objective=objective)
    )
    worker = WorkerProcess(
        settings, "w1", app_id=f"g{unique}", workdir=tmp_path, loglevel="warning"
    )
    proxies = [
        ProviderSelector.connect("qf", settings, feature_fn=lambda r: r["x"], seed=s)
        for s in (1, 2)
    ]
    rng = np.random.default_rng(0)
    per_proxy = 40
    try:
        worker.start()
        worker.wait_ready()
        for proxy in proxies:
            assert proxy.reader.wait_for_version(0, timeout=10)
            assert proxy.reader.view.snapshot.dual == 0.0
            for _ in range(per_proxy):
                x = (1.0, float(rng.normal()), float(rng.integers(2)))
                d = proxy.select({"x": x})
                # every outcome 0.3 under the floor: λ grows by η·0.3 per outcome
                proxy.report_outcome(
                    d.decision_id, quality=0.6, cost=COST[d.provider], latency=400.0, final=True
                )
            proxy.producer.flush(10)

        n = 2 * per_proxy

        def applied():
            state = redis_store.read_state("qf")
            return sum(st.n for st in state.arms.values()) == n and state

        state = wait_for(applied, 60, f"{n} rewards applied; {worker.log_tail(10)}")
        # with every quality equal the buffer is 0 and the batches' steps add up to the
        # same λ however the worker batched them
        assert state.dual == pytest.approx(0.5 * 0.3 * n, rel=1e-6)
        for proxy in proxies:
            assert proxy.reader.wait_for_version(state.version, timeout=10)
            snap = proxy.reader.view.snapshot
            assert snap.version == state.version and snap.dual == state.dual
            # and selection runs on θ rebuilt at that λ
            np.testing.assert_allclose(snap.weights, objective_weights(objective, spec, state.dual))
        with PolicyReader(redis_store, "qf", start=False, notify=False) as reader:
            reader.refresh()
            assert reader.view.snapshot.dual == state.dual
    finally:
        for proxy in proxies:
            proxy.close()
        worker.stop()
