"""Settings refuse bad values with one line naming the variable, and warn about unknown ones."""

from __future__ import annotations

import logging

import pytest

from policy_store import ConfigError, Settings, SettingsError
from policy_store._settings import unknown_variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in [k for k in os.environ if k.upper().startswith("RL_COMMONS_")]:
        monkeypatch.delenv(key)


def test_a_bad_number_names_the_variable_the_value_and_the_fix(monkeypatch):
    monkeypatch.setenv("RL_COMMONS_TOPIC_PARTITIONS", "abc")
    with pytest.raises(SettingsError) as info:
        Settings()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("RL_COMMONS_TOPIC_PARTITIONS: 'abc' is invalid")
    assert "— set a whole number ≥ 1, e.g. 4" in msg
    assert "topic_partitions" not in msg
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_secrets_are_never_echoed():
    with pytest.raises(SettingsError) as info:
        Settings(redis_password=["hunter2"])
    assert "hunter2" not in str(info.value) and "RL_COMMONS_REDIS_PASSWORD" in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "localhost"])
def test_a_url_that_is_not_redis_is_refused(url):
    with pytest.raises(
        SettingsError, match=r"^RL_COMMONS_REDIS_URL: .*not a Redis URL\) — use redis://"
    ):
        Settings(redis_url=url)


def test_redis_urls_accepted_and_passwords_masked():
    for url in ("redis://h:1/0", "rediss://h:1/0", "unix:///tmp/r.sock", "REDIS://h:1"):
        assert Settings(redis_url=url).redis_url == url
    with pytest.raises(SettingsError) as info:
        Settings(redis_url="http://:s3cret@h:1")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("given", ["sasl_ssl", "Sasl_Ssl", " SASL_SSL "])
def test_security_protocol_is_case_insensitive(given):
    s = Settings(kafka_security_protocol=given, kafka_sasl_mechanism="scram-sha-256")
    assert s.kafka_security_protocol == "SASL_SSL" and s.kafka_sasl_mechanism == "SCRAM-SHA-256"


def test_an_unknown_protocol_lists_the_choices():
    with pytest.raises(SettingsError, match="use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"):
        Settings(kafka_security_protocol="tls")


def test_a_misspelt_variable_is_named_with_the_close_match():
    lines = unknown_variables(
        {"RL_COMMONS_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "RL_COMMONS_REDIS_URL": "redis://x",
         "RL_COMMONS_DASHBOARD_SCREENSHOT": "a.png", "PATH": "/bin", "RL_COMMONS_ZZZ": "1"}
    )  # fmt: skip
    assert lines == [
        "RL_COMMONS_KAFKA_BOOTSTRAP_SERVERS is not an rl-commons setting and is ignored — "
        "did you mean RL_COMMONS_KAFKA_BOOTSTRAP?",
        "RL_COMMONS_ZZZ is not an rl-commons setting and is ignored — "
        "see `rl-commons --help` or the README",
    ]


def test_settings_warn_once_per_unknown_variable(monkeypatch, caplog):
    monkeypatch.setenv("RL_COMMONS_REDIS_ULR", "redis://x:1/0")
    with caplog.at_level(logging.WARNING, logger="policy_store.settings"):
        Settings()
        Settings()
    hits = [r.getMessage() for r in caplog.records if "RL_COMMONS_REDIS_ULR" in r.getMessage()]
    assert hits == [
        "RL_COMMONS_REDIS_ULR is not an rl-commons setting and is ignored — "
        "did you mean RL_COMMONS_REDIS_URL?"
    ]
