"""The stream app end to end: real embedded broker, real Redis, a worker subprocess."""

from __future__ import annotations

import pytest

from policy_store import PolicyReader
from tests._worker_proc import WorkerProcess
from tests.integration._stream_helpers import (
    FULL,
    Sender,
    arm_counts,
    decision,
    make_policy,
    outcome,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(settings, unique, tmp_path):
    w = WorkerProcess(
        settings, "w1", app_id=f"g{unique}", workdir=tmp_path, args=["--sweep-interval", "0.2"]
    )
    w.start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


def test_decision_then_outcome_changes_parameters_seen_by_reader(
    services, settings, topics, redis_store, worker
):
    make_policy(redis_store)
    with PolicyReader(redis_store, "route", poll_interval=0.05) as reader:
        v0 = reader.version
        s = Sender(services.bootstrap, topics)
        s.send_all([decision(1, arm="claude-3"), outcome(1, **FULL)])
        assert reader.wait_for_version(v0 + 1, timeout=30), worker.log_tail()
    assert arm_counts(redis_store) == {"claude-3": 1.0}
    assert "rlc_applied_total 1.0" in worker.metrics()
