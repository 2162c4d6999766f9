"""Policy config: defaults, validation messages that name the field and the fix."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from policy_store import ConfigError, PolicyConfig, RewardSpec, Settings, make_config


def test_defaults_match_the_documented_reward():
    spec = RewardSpec()
    assert spec.reward(quality=0.9, cost=0.5, latency=0.5) == pytest.approx(
        0.5 * 0.9 + 0.3 * 0.5 + 0.2 * 0.5
    )
    assert spec.reward(error=True) == spec.failure_reward


def test_raw_cost_and_latency_normalised_by_caps():
    spec = RewardSpec(cost_cap=0.02, latency_cap_ms=4000)
    assert spec.reward(quality=1.0, cost=0.01, latency=2000) == pytest.approx(
        0.5 + 0.3 * 0.5 + 0.2 * 0.5
    )
    assert spec.normalise_cost(1.0) == 1.0  # clipped


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"rollout_fraction": 1.5}, "rollout_fraction"),
        ({"arms": []}, "at least one arm"),
        ({"arms": ["a", "a"]}, "remove the duplicates"),
        ({"baseline_arm": "zzz"}, "baseline_arm 'zzz' is not one of arms"),
        ({"n_features": 0}, "n_features"),
        ({"name": "has space"}, "name"),
        ({"algorithm": {"name": "dqn"}}, "algorithm.name"),
        ({"algorithm": {"forgetting": 0}}, "algorithm.forgetting"),
        ({"reward": {"quality_weight": 0, "cost_weight": 0, "latency_weight": 0}}, "weight"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted (got 'red') — remove it"),
    ],
)
def test_invalid_config_names_field_and_fix(fields, needle):
    base = {"name": "p", "arms": ["a", "b"], "n_features": 3}
    with pytest.raises(ConfigError) as info:
        make_config({**base, **fields})
    assert needle in str(info.value)


def test_missing_field_says_add_it():
    with pytest.raises(ConfigError, match="n_features: Field required — add this field"):
        make_config(name="p", arms=["a"])


def test_config_round_trips_json_and_is_frozen():
    cfg = make_config(name="p", arms=["a", "b"], n_features=3, baseline_arm="b")
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    assert cfg.fallback_arm == "b"
    with pytest.raises(ValidationError):
        cfg.rollout_fraction = 0.5  # type: ignore[misc]
    assert cfg.with_changes(enabled=False).enabled is False


def test_settings_from_env_and_secrets_hidden(monkeypatch):
    monkeypatch.setenv("RL_COMMONS_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("RL_COMMONS_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("RL_COMMONS_DASHBOARD_TOKEN", "tok-123")
    s = Settings()
    assert s.redis_url == "redis://example:6380/2"
    assert s.kafka_sasl_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "tok-123" not in repr(s)
    assert s.topic("decisions") == "rlc.decisions"


def test_settings_child_env_round_trips(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RL_COMMONS_")]:
        monkeypatch.delenv(key)
    s = Settings(
        kafka_bootstrap="b:1",
        kafka_sasl_password="hunter2",
        topic_partitions=7,
        producer_linger_ms=2.5,
        key_prefix="rlc",  # set explicitly, equal to the default: still rendered
    )
    env = s.child_env()
    assert env["RL_COMMONS_KAFKA_SASL_PASSWORD"] == "hunter2"  # the child needs the secret
    assert env["RL_COMMONS_KEY_PREFIX"] == "rlc"
    assert "RL_COMMONS_POLICY" not in env and "RL_COMMONS_REDIS_PASSWORD" not in env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == s
