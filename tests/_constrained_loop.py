"""A constrained policy's learning loop written to Redis as a stream worker writes it
(statistics with a multiplier step, then the aggregates through ``RedisAggregates``, which
records λ per minute); shared by the CLI and dashboard tests of objectives."""

from __future__ import annotations

import time

import numpy as np

from policy_store import Observation, component_values
from producers import RewardComponents, RewardEvent
from stream_app.aggregates import AppliedBatch, RedisAggregates

PROVIDERS = {"gpt-4": (0.90, 0.030), "mini": (0.87, 0.006), "llama": (0.70, 0.001)}


def reward_event(cfg, i, cohort, arm, rng, ts):
    q0, c0 = PROVIDERS[arm]
    q = float(np.clip(rng.normal(q0, 0.05), 0, 1))
    c = cfg.reward.normalise_cost(c0 * rng.uniform(0.8, 1.2))
    return RewardEvent(
        decision_id=f"d{i}", policy=cfg.name, policy_version=1, arm=arm,
        features=(1.0, float(rng.random())), reward=cfg.reward.reward(q, c * 0.05, 300.0),
        components=RewardComponents(quality=q, cost=c, latency=0.1), propensity=0.9,
        cohort=cohort, decision_ts=ts, reward_ts=ts,
    )  # fmt: skip


def run_loop(redis_store, name, *, minutes=5, per_minute=200, seed=0, dual_step=0.002):
    """Apply minutes of rewards as a worker would: the statistics with a multiplier step,
    then the aggregates through ``RedisAggregates`` (which records λ per minute)."""
    cfg = redis_store.get_config(name)
    rng = np.random.default_rng(seed)
    sink = RedisAggregates(redis_store.client, redis_store.prefix)
    now = time.time()
    i = 0
    for m in range(minutes):
        ts = now - 60 * (minutes - 1 - m)
        events = []
        for _ in range(per_minute):
            cohort = "rl" if rng.random() < 0.5 else "baseline"
            arm = "gpt-4" if cohort == "baseline" else ("mini" if rng.random() < 0.9 else "llama")
            events.append(reward_event(cfg, i, cohort, arm, rng, ts))
            i += 1
        obs = [
            Observation(e.decision_id, e.arm, e.features, e.reward,
                        components=component_values(cfg.reward, e.components.quality,
                                                    e.components.cost * 0.05, 300.0))
            for e in events
        ]  # fmt: skip
        res = redis_store.apply(name, obs, dual_delta=dual_step * (m + 1))
        sink.add_batch(name, AppliedBatch(events, res.applied, res.duplicates, 0.003, 0.2, ts))
    return cfg
