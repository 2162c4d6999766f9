"""The default policy learns through the real pipeline: proxy → Kafka → worker → Redis → proxy.

A small version of ``benchmarks/bench_pipeline_learning.py``: one simulator stream
served by a streaming ``ProviderSelector`` at a fixed request rate, outcomes
published to Kafka, one ``rl-commons worker`` subprocess joining them and updating
Redis, parameters coming back through the ``PolicyReader`` with the real delay and
batching. Learning must beat uniform random by a wide margin, and every outcome
must reach the parameters exactly once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from producers import EventProducer
from tests._worker_proc import WorkerProcess

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench():
    """The benchmark module (it puts ``benchmarks/`` on sys.path for its own imports)."""
    spec = importlib.util.spec_from_file_location(
        "bench_pipeline_learning", BENCH / "bench_pipeline_learning.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_default_policy_learns_through_the_pipeline(settings, redis_store, unique, tmp_path):
    bench = _bench()
    setting = bench.SETTINGS["K3-d8-noise0.2-clip-rho0.5"]
    rounds, seed = 400, 3
    stream = setting.stream(rounds, seed)
    worker = WorkerProcess(
        settings, "w1", app_id=f"g{unique}", workdir=tmp_path, loglevel="warning"
    )
    producer = EventProducer(settings).start()
    try:
        worker.start()
        worker.wait_ready()
        res = bench.play_pipeline(
            stream,
            "learn",
            settings,
            redis_store,
            producer,
            10_000 + seed,
            rate=20.0,
            response_delay=0.0,
        )
    finally:
        producer.close(5.0)
        worker.stop()

    assert res.dropped == 0
    assert res.applied == rounds, f"{res.applied} of {rounds} outcomes reached the parameters"
    pipeline = float(stream.regret(res.served).mean())
    uniform = bench.run(bench.Uniform(setting.n_arms, setting.n_features, seed), stream)
    uniform_regret = float(stream.regret(uniform).mean())
    # learning with delayed, batched feedback still loses less than half of what random does
    assert pipeline < 0.5 * uniform_regret, (pipeline, uniform_regret)
    # and the second half is better than the first: the parameters coming back are used
    half = rounds // 2
    regret = stream.regret(res.served)
    assert regret[half:].mean() < regret[:half].mean()
    assert np.isfinite(res.freshness).all() and len(res.freshness) > 10
