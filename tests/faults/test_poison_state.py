"""An infinity written into a policy's state in Redis: proxies keep serving.

State that holds a number that is not finite (written by an older version, a manual
edit, a bug) must not reach ``select``: ``PolicyReader`` refuses the snapshot, keeps
the one it had (and, once that is older than ``max_staleness_seconds``, the selector
serves the baseline); a proxy started after the poison has no snapshot and serves the
baseline. No select raises into the caller, whatever the rollout. Once an operator
resets the state, the learned policy serves again.
"""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from _traffic import wait_until

from policy_store import Observation, PolicyReader
from producers import SafeProviderSelector

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

ARMS = ["gpt-4", "claude-3", "llama"]
D = 4
BOUND = 2.0  # the policy's max_staleness_seconds


def _proxy(store, seed: int, rollout: float) -> tuple[SafeProviderSelector, PolicyReader]:
    reader = PolicyReader(store, "p", poll_interval=0.05, seed=seed)
    proxy = SafeProviderSelector(
        exploration_rate=rollout,
        providers=ARMS,
        feature_fn=lambda request: request["x"],
        seed=seed,
        policy="p",
        reader=reader,
        owns_reader=True,
    )
    return proxy, reader


def _select(proxies, requests, seconds: float) -> tuple[int, int, set[str]]:
    """Select round-robin for ``seconds``; (calls, exceptions, cohorts served)."""
    calls = errors = 0
    cohorts: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proxy in proxies:
            for request in requests:
                calls += 1
                try:
                    cohorts.add(proxy.select(request).cohort)
                except Exception:
                    errors += 1
    return calls, errors, cohorts


@pytest.mark.parametrize("rollout", [1.0, 0.0])
def test_an_infinity_in_the_state_never_reaches_a_caller(fault_services, rollout):
    svc = fault_services
    svc.create_policy(
        "p", ARMS, D, rollout_fraction=rollout, baseline_arm="llama", max_staleness_seconds=BOUND
    )
    store = svc.store()
    rng = np.random.default_rng(0)
    store.apply(
        "p",
        [
            Observation(f"d{i}", ARMS[i % 3], tuple(rng.random(D)), float(rng.random()))
            for i in range(300)
        ],
    )
    requests = [{"x": tuple(rng.random(D))} for _ in range(20)]
    early, early_reader = _proxy(svc.store(), seed=1, rollout=rollout)
    wait_until(lambda: early_reader.version == store.version("p"), 10, "the proxy to load")
    good_version = early_reader.version

    # the poison: +inf in one of gpt-4's reward sums, announced like an apply
    k = store.keys("p")
    b = bytearray(store.client.hget(k.state, "b:gpt-4"))
    b[:8] = struct.pack("<d", float("inf"))
    store.client.hset(k.state, "b:gpt-4", bytes(b))
    poisoned = store.client.incr(k.version)
    store.client.publish(k.channel, str(poisoned))
    wait_until(lambda: early_reader.refused > 0, 10, "the proxy to refuse the poisoned version")
    late, late_reader = _proxy(svc.store(), seed=2, rollout=rollout)
    try:
        calls, errors, cohorts = _select([early, late], requests, 2 * BOUND)
        assert errors == 0 and calls > 1000
        assert early_reader.version == good_version  # the previous snapshot, never the poison
        assert late_reader.view is None and late_reader.refused > 0
        # after the bound the early proxy serves the baseline too; nobody served the poison
        assert early_reader.staleness() > BOUND
        calls, errors, cohorts = _select([early, late], requests, 0.5)
        assert errors == 0 and cohorts == {"baseline"}
        assert {early.select(r).provider for r in requests} == {"llama"}

        store.reset("p")  # the operator clears the state: the learned policy is back
        wait_until(
            lambda: early_reader.version == late_reader.version == store.version("p"),
            10,
            "both proxies to load the clean version",
        )
        calls, errors, cohorts = _select([early, late], requests, 0.5)
        assert errors == 0
        assert cohorts == ({"rl"} if rollout == 1.0 else {"baseline"})
        print(
            f"\npoisoned state, rollout {rollout:.0%}: {early_reader.refused} + "
            f"{late_reader.refused} refusals, 0 exceptions"
        )
    finally:
        early.close()
        late.close()
