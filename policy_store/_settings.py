"""Settings read once at the entry points (env prefix ``RL_COMMONS_``), passed down as objects."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of rl-commons; each field is the env var ``RL_COMMONS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RL_COMMONS_", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, …")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    topic_prefix: str = Field(
        "rlc.", description="Prefix of the decisions/outcomes/rewards/dlq topics."
    )
    topic_partitions: int = Field(4, ge=1, description="Partitions when rl-commons creates topics.")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (password in the URL)."
    )
    redis_password: SecretStr | None = Field(None, description="Overrides the URL's password.")
    key_prefix: str = Field("rlc", description="Prefix of every Redis key.")
    policy: str = Field("provider_selection", description="Default policy name.")
    dashboard_token: SecretStr | None = Field(
        None, description="Token required for dashboard writes (rollout, kill switch)."
    )
    producer_queue_max: int = Field(100_000, ge=1, description="Events buffered before drops.")
    producer_linger_ms: float = Field(
        5.0,
        ge=0,
        description="How long the proxy's producer gathers events into one request (ms); "
        "more saves broker and client CPU, adds that much to the learning loop's delay.",
    )
    poll_interval: float = Field(0.1, gt=0, description="PolicyReader refresh period (s).")

    def __repr_args__(self):  # never show a password written inside a URL
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                value = mask_url(value)
            yield name, value

    def child_env(self) -> dict[str, str]:
        """The ``RL_COMMONS_*`` variables that reproduce these settings in a child process.

        Every field that was set or differs from its default, secrets in clear text (the child
        needs them): pass it to ``subprocess``, never log it.
        """
        env = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None or (name not in self.model_fields_set and value == info.default):
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"RL_COMMONS_{name.upper()}"] = str(value)
        return env

    def redis_kwargs(self) -> dict:
        kw: dict = {}
        if self.redis_password is not None:
            kw["password"] = self.redis_password.get_secret_value()
        return kw

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<pw>[^@/]*)@", re.I
)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and messages).

    >>> mask_url("redis://:s3cret@host:6379/0")
    'redis://:***@host:6379/0'
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
