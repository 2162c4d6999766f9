"""``rl-commons report`` / ``evaluate`` against the real broker and Redis."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from policy_store import Observation, make_algorithm, make_config
from producers import RewardComponents, RewardEvent
from stream_app.aggregates import add_rewards
from stream_app.ops.cli import main
from stream_app.ops.report import build_report

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, events) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for e in events:
        if isinstance(e, bytes):
            p.produce(topic, key=b"junk", value=e)
        else:
            p.produce(topic, key=e.decision_id.encode(), value=e.to_bytes())
    assert p.flush(30) == 0


def event(i, cohort, arm, q, c, *, policy="routing", features=(1.0, 0.0), propensity=0.9, r=None):
    reward = 0.5 * q + 0.3 * (1 - c) + 0.2 * 0.7 if r is None else r
    return RewardEvent(
        decision_id=f"{policy}-{cohort}-{i}",
        policy=policy,
        policy_version=3,
        arm=arm,
        features=features,
        reward=reward,
        components=RewardComponents(quality=q, cost=c, latency=0.3),
        propensity=propensity,
        cohort=cohort,
        decision_ts=1000.0 + i,
        reward_ts=1000.5 + i,
    )


def cohort_events(n=150, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(event(i, "rl", "llama", rng.uniform(0.7, 0.9), rng.uniform(0.1, 0.3)))
        out.append(event(i, "baseline", "gpt-4", rng.uniform(0.7, 0.9), rng.uniform(0.4, 0.6)))
    return out


def cli_args(settings) -> list[str]:
    return [
        "--kafka-bootstrap",
        settings.kafka_bootstrap,
        "--topic-prefix",
        settings.topic_prefix,
        "--redis-url",
        settings.redis_url,
        "--key-prefix",
        settings.key_prefix,
    ]


def test_report_reads_the_rewards_topic(settings, topics, capsys, tmp_path):
    events = cohort_events()
    noise = [event(i, "rl", "gpt-4", 0.1, 0.9, policy="other") for i in range(20)]
    produce(settings.kafka_bootstrap, topics.rewards, [*events, *noise, b"{not json"])

    png = tmp_path / "report.png"
    rc = main(["report", "routing", "--json", "--plot", str(png), *cli_args(settings)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    expected = build_report(events, policy="routing").to_dict()
    assert data["counts"] == {"rl": 150, "baseline": 150, "shadow": 0}
    for m in ("reward", "quality", "cost"):
        got, want = data["metrics"][m]["difference"], expected["metrics"][m]["difference"]
        assert got["estimate"] == pytest.approx(want["estimate"])
        assert got["low"] == pytest.approx(want["low"])
    rl_cost = np.mean([e.components.cost for e in events if e.cohort == "rl"])
    base_cost = np.mean([e.components.cost for e in events if e.cohort == "baseline"])
    assert data["cost_reduction"]["estimate"] == pytest.approx(1 - rl_cost / base_cost)
    assert 0.45 < data["cost_reduction"]["estimate"] < 0.75  # ≈ 1 − 0.2/0.5
    assert data["quality_non_inferior"] in (True, False)
    assert "1 unparseable" in out.err
    assert png.read_bytes()[:4] == b"\x89PNG"

    rc = main(["report", "routing", *cli_args(settings)])
    text = capsys.readouterr().out
    assert rc == 0 and "cost reduction" in text and "quality non-inferiority" in text


def test_report_from_redis_aggregates(settings, redis_client, capsys):
    from policy_store import PolicyKeys

    events = cohort_events(100, seed=1)
    now = time.time()
    recent = [e.model_copy(update={"reward_ts": now - 60 * (i % 5)}) for i, e in enumerate(events)]
    pipe = redis_client.pipeline(transaction=False)
    add_rewards(pipe, PolicyKeys(settings.key_prefix, "routing"), [e.model_dump() for e in recent])
    pipe.execute()
    rc = main(
        ["report", "routing", "--source", "redis", "--minutes", "30", "--json", *cli_args(settings)]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    exact = build_report(events).to_dict()
    assert data["counts"]["rl"] == 100
    assert data["metrics"]["cost"]["difference"]["estimate"] == pytest.approx(
        exact["metrics"]["cost"]["difference"]["estimate"]
    )
    assert any("conservative" in n for n in data["notes"])


def test_evaluate_current_policy_and_candidate(settings, topics, redis_store, capsys, tmp_path):
    # the logging policy explores enough (ε = 0.2) for every arm to be seen in every context
    cfg = make_config(
        name="routing", arms=("gpt-4", "llama"), n_features=2, algorithm={"epsilon": 0.2}
    )
    redis_store.create(cfg)
    rng = np.random.default_rng(7)
    # learned state: llama is good for feature 1, gpt-4 for feature 0
    obs = []
    for i in range(200):
        x = (1.0, float(rng.integers(0, 2)))
        arm = ("gpt-4", "llama")[i % 2]
        r = 0.8 if (arm == "llama") == (x[1] == 1.0) else 0.3
        obs.append(Observation(f"o{i}", arm, x, r))
    redis_store.apply("routing", obs)
    state = redis_store.read_state("routing")
    algo = make_algorithm(cfg.algorithm)
    snap = algo.snapshot(state, cfg.arms, 2)
    # logs served by the current policy itself, with its propensities
    events = []
    for i in range(300):
        x = np.array([1.0, float(rng.integers(0, 2))])
        sel = algo.select(snap, x, rng)
        r = 0.8 if (sel.arm == "llama") == (x[1] == 1.0) else 0.3
        events.append(
            event(i, "rl", sel.arm, 0.8, 0.2, features=tuple(x), propensity=sel.propensity, r=r)
        )
    events += [
        event(i, "baseline", "gpt-4", 0.8, 0.5, features=(1.0, 0.0), propensity=1.0)
        for i in range(50)
    ]
    produce(settings.kafka_bootstrap, topics.rewards, events)
    cand = tmp_path / "cand.json"
    cand.write_text(json.dumps({"algorithm": {"epsilon": 0.8}}))

    rc = main(
        ["evaluate", "routing", "--json", "--candidate-config", str(cand), *cli_args(settings)]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    logged = float(np.mean([e.reward for e in events if e.cohort == "rl"]))
    cur = data["current"]
    assert cur["n"] == 300 and data["skipped"]["other_cohorts"] == 50
    # the target is the logging policy: every weight is 1, IPS = SNIPS = logged mean
    assert cur["ips"]["estimate"] == pytest.approx(logged)
    assert cur["snips"]["estimate"] == pytest.approx(logged)
    # the true value: the greedy arm (reward 0.8) with probability 1 − ε/2, else 0.3
    truth = (1 - 0.2 / 2) * 0.8 + 0.2 / 2 * 0.3
    assert cur["dr"]["estimate"] == pytest.approx(truth, abs=0.03)
    # a candidate exploring 80% of the time must be worse: the paired DR difference is negative
    diff = data["candidate_minus_current_dr"]
    assert diff["high"] < 0
    assert data["candidate"]["dr"]["estimate"] < cur["dr"]["estimate"]

    rc = main(["evaluate", "routing", *cli_args(settings)])
    assert rc == 0 and "Off-policy evaluation" in capsys.readouterr().out


def test_missing_topic_and_bad_candidate_are_explained(settings, redis_store, capsys, tmp_path):
    args = cli_args(settings)
    args[args.index("--topic-prefix") + 1] = "no-such-prefix."
    assert main(["report", "routing", "--timeout", "10", *args]) == 1
    assert "does not exist" in capsys.readouterr().err

    redis_store.create(make_config(name="routing", arms=("a", "b"), n_features=2))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"algorithm": {"epsilon": 3}}))
    assert main(["evaluate", "routing", "--candidate-config", str(bad), *cli_args(settings)]) == 1
    assert "epsilon" in capsys.readouterr().err
