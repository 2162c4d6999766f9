"""`rl-commons inspect|rollout|disable|enable|reset` against a real Redis, bad input included."""

from __future__ import annotations

import io
import json
import sys
import time

import numpy as np
import pytest

from policy_store import Observation, make_config
from stream_app import aggregates
from stream_app.ops.cli import main


@pytest.fixture
def cli(services, key_prefix, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--redis-url", services.redis_url, "--key-prefix", key_prefix])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def live(redis_store):
    """A policy with learned state, per-minute aggregates and health counters, written the way
    the stream worker writes them: store.apply for parameters, aggregates helpers for the rest."""
    redis_store.create(
        make_config(name="route", arms=["gpt-4", "claude-3", "llama"], n_features=2,
                    baseline_arm="gpt-4")
    )  # fmt: skip
    rng = np.random.default_rng(7)
    true_theta = {"gpt-4": (0.8, 0.1), "claude-3": (0.3, 0.4), "llama": (0.2, 0.0)}
    arms = rng.choice(["gpt-4", "claude-3", "llama"], size=400, p=[0.5, 0.3, 0.2])
    now = time.time()
    obs, rewards = [], []
    for i, arm in enumerate(arms):
        x = (1.0, float(rng.random()))
        r = float(np.dot(true_theta[arm], x) + rng.normal(0, 0.05))
        obs.append(Observation(f"d{i}", str(arm), x, r))
        rewards.append(
            {"cohort": "rl" if i % 4 else "baseline", "arm": str(arm), "reward": r,
             "reward_ts": now - 60 * (i % 5),
             "components": {"quality": 0.5, "cost": 0.002, "latency": 0.25, "error": i == 3}}
        )  # fmt: skip
    redis_store.apply("route", obs)
    keys = redis_store.keys("route")
    pipe = redis_store.client.pipeline()
    aggregates.add_rewards(pipe, keys, rewards)
    aggregates.incr_health(
        pipe,
        keys,
        {
            "events_in": 830,
            "joined": 400,
            "expired": 100,
            "late": 5,
            "dlq:bad_json": 3,
            "dlq:unknown_arm": 1,
        },
    )
    pipe.hset(keys.extra("freshness"),
              mapping={"last_apply_ms": now * 1000, "last_lag_ms": 42.0})  # fmt: skip
    pipe.execute()
    return {"arms": arms, "true_theta": true_theta, "obs": obs}


def test_inspect_json_matches_what_was_written(cli, live):
    code, out, err = cli("inspect", "route", "--json", "--no-kafka")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["name"] == "route" and rep["version"] == 1
    assert 0 <= rep["staleness_seconds"] < 3600
    assert rep["config"]["baseline_arm"] == "gpt-4"
    by_arm = {a["arm"]: a for a in rep["arms"]}
    for arm in ("gpt-4", "claude-3", "llama"):
        count = int((live["arms"] == arm).sum())
        assert by_arm[arm]["n"] == count and by_arm[arm]["rewarded"] == count
        assert by_arm[arm]["share"] == pytest.approx(count / 400)
        mean = np.mean([o.reward for o in live["obs"] if o.arm == arm])
        assert by_arm[arm]["mean_reward"] == pytest.approx(mean)
        # θ recovers the simulated coefficients (ridge 1, hundreds of points, noise 0.05)
        np.testing.assert_allclose(by_arm[arm]["theta"], live["true_theta"][arm], atol=0.1)
    assert by_arm["gpt-4"]["cost"] == pytest.approx(0.002)
    assert {c["cohort"]: c["n"] for c in rep["cohorts"]} == {"baseline": 100, "rl": 300}
    h = rep["health"]
    assert h["join_rate"] == pytest.approx(0.8)
    assert h["dlq_total"] == 4 and h["dlq_by_reason"] == {"bad_json": 3, "unknown_arm": 1}
    assert h["consumer_lag_ms"] == 42.0 and h["counters"]["late"] == 5


def test_inspect_text(cli, live):
    code, out, _ = cli("inspect", "route", "--no-kafka")
    assert code == 0
    assert "version    1" in out and "baseline arm gpt-4" in out
    row = next(ln.split() for ln in out.splitlines() if ln.strip().startswith("gpt-4 "))
    assert row[1] == str(int((live["arms"] == "gpt-4").sum()))
    assert "join rate 80.0%" in out and "DLQ 4 (bad_json=3, unknown_arm=1)" in out


def test_inspect_fresh_policy_and_window(cli, redis_store):
    redis_store.create(make_config(name="empty", arms=["a", "b"], n_features=1))
    code, out, _ = cli("inspect", "empty", "--no-kafka")
    assert code == 0 and "never updated" in out and "no health counters yet" in out
    rep = json.loads(cli("inspect", "empty", "--json", "--window", "5", "--no-kafka")[1])
    assert rep["window_minutes"] == 5 and rep["staleness_seconds"] is None
    assert all(a["n"] == 0 and a["mean_reward"] is None for a in rep["arms"])
    code, _, err = cli("inspect", "empty", "--window", "0")
    assert code == 1 and "--window 0" in err and "from 1 to 10080" in err
    code, _, err = cli("inspect", "empty", "--window", "10081")
    assert code == 1 and "aggregates are kept 7 days" in err


@pytest.mark.parametrize(
    "raw, expected", [("0.25", 0.25), ("25%", 0.25), ("0", 0.0), ("1", 1.0), ("100%", 1.0)]
)
def test_rollout_sets_fraction(cli, redis_store, raw, expected):
    redis_store.create(make_config(name="r", arms=["a"], n_features=1))
    code, out, _ = cli("rollout", "r", raw)
    assert code == 0 and "rollout 10% ->" in out
    assert redis_store.get_config("r").rollout_fraction == expected


@pytest.mark.parametrize(
    "raw, expected",
    [("1.5", "out of range"), ("-0.1", "out of range"), ("101%", "out of range"),
     ("half", "not a number"), ("nan", "out of range")],
)  # fmt: skip
def test_rollout_refuses_bad_fraction(cli, redis_store, raw, expected):
    redis_store.create(make_config(name="r", arms=["a"], n_features=1))
    code, out, err = cli("rollout", "r", raw)
    assert code == 1 and out == "" and expected in err and "between 0" in err
    assert redis_store.get_config("r").rollout_fraction == 0.1


def test_kill_switch(cli, redis_store):
    redis_store.create(make_config(name="k", arms=["a", "b"], n_features=1, baseline_arm="b"))
    code, out, _ = cli("disable", "k")
    assert code == 0 and "baseline arm 'b'" in out
    assert redis_store.get_config("k").enabled is False
    code, out, _ = cli("rollout", "k", "0.5")
    assert code == 0 and "disabled" in out
    code, out, _ = cli("enable", "k")
    assert code == 0 and "serves 50%" in out
    assert redis_store.get_config("k").enabled is True


def test_reset_asks_and_clears_state(cli, redis_store, live, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli("reset", "route")
    assert code == 1 and "stdin is not a terminal; pass --yes" in err
    assert redis_store.read_state("route").arms  # untouched

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty("no\n"))
    code, _, err = cli("reset", "route")
    assert code == 1 and "forgets 400 observations" in err and "cancelled" in err
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    code, out, _ = cli("reset", "route")
    assert code == 0 and "now at version 2" in out
    state = redis_store.read_state("route")
    assert state.arms == {} and state.version == 2
    assert redis_store.get_config("route").baseline_arm == "gpt-4"  # config kept
    code, out, _ = cli("reset", "route", "--yes")
    assert code == 0 and "version 3" in out


@pytest.mark.parametrize(
    "argv",
    [["inspect", "ghost"], ["rollout", "ghost", "0.5"], ["disable", "ghost"],
     ["enable", "ghost"], ["reset", "ghost", "--yes"]],
)  # fmt: skip
def test_unknown_policy(cli, argv):
    code, out, err = cli(*argv)
    assert code == 1 and out == ""
    assert "no policy named 'ghost'" in err and "rl-commons policy create" in err


@pytest.mark.parametrize(
    "argv", [["inspect", "p"], ["rollout", "p", "0.5"], ["disable", "p"], ["reset", "p", "-y"]]
)
def test_redis_unreachable(capsys, argv):
    code = main([*argv, "--redis-url", "redis://127.0.0.1:1/0"])
    err = capsys.readouterr().err
    assert code == 1 and "Redis unreachable at redis://127.0.0.1:1/0" in err


def test_missing_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["rollout", "p"])
    assert exc.value.code == 2 and "fraction" in capsys.readouterr().err
