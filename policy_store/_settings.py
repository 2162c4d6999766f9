"""Settings read once at the entry points (env prefix ``RL_COMMONS_``), passed down as objects.

A bad value is refused with one line naming the variable, the problem and the fix
(``SettingsError``, a ``ConfigError``), never a pydantic traceback; an ``RL_COMMONS_*``
variable that is no setting (a typo such as ``RL_COMMONS_KAFKA_BOOTSTRAP_SERVERS``) is
warned about once per process, with the closest setting's name.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigError

log = logging.getLogger("policy_store.settings")

ENV_PREFIX = "RL_COMMONS_"
# RL_COMMONS_* variables that are read elsewhere (the test suite), not by Settings
OTHER_VARIABLES = frozenset({"RL_COMMONS_DASHBOARD_SCREENSHOT", "RL_COMMONS_FAULT_REWARDS"})
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_warned: set[str] = set()


class SettingsError(ConfigError):
    """An ``RL_COMMONS_*`` setting is invalid; the message is one line: variable, problem, fix."""


class Settings(BaseSettings):
    """Every knob of rl-commons; each field is the env var ``RL_COMMONS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

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

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None
        for line in unknown_variables(os.environ, once=True):
            log.warning(line)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:  # sasl_ssl, scram-sha-256: librdkafka's names are upper case
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if not v.lower().startswith(REDIS_SCHEMES):
            raise ValueError("not a Redis URL")
        return v

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


# one URL: the password runs to its last "@" (it may itself hold "@", "/", ":", spaces)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<pw>.*)@", re.I | re.S
)


# redis-py also takes the password as a query argument (?password=...)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.I)


def mask_url(url: str) -> str:
    """``url`` (one URL) with any password replaced by ``***`` (for logs and messages).

    >>> mask_url("redis://:s3cret@host:6379/0")
    'redis://:***@host:6379/0'
    >>> mask_url("redis://user:p@ss/w:rd@host:6379/0")
    'redis://user:***@host:6379/0'
    """
    url = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _QUERY_PASSWORD.sub(r"\g<1>***", url)


# what to write instead, per field, when pydantic's message alone does not say it
_FIXES = {
    "redis_url": "use redis://HOST:6379/0 (rediss:// for TLS, unix:///path/redis.sock)",
    "kafka_security_protocol": "use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
}


def _fix(field: str) -> str:
    if field in _FIXES:
        return _FIXES[field]
    info = Settings.model_fields.get(field)
    if info is None or info.default is None:
        return "check the value"
    kind = {int: "a whole number", float: "a number"}.get(info.annotation, "a valid value")
    bounds = "".join(
        f" {sym} {getattr(m, attr)}"
        for m in info.metadata
        for attr, sym in (("ge", "≥"), ("gt", ">"))
        if getattr(m, attr, None) is not None
    )
    return f"set {kind}{bounds}, e.g. {info.default}"


def describe_errors(exc: ValidationError) -> str:
    """A pydantic error of ``Settings`` as one line per problem, joined on one line:
    ``RL_COMMONS_X: problem — fix`` (secrets never echoed, URLs masked)."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        var = f"{ENV_PREFIX}{field.upper()}"
        value = err.get("input")
        shown = "the value"
        if not field.endswith(("password", "token")) and isinstance(value, str | int | float):
            shown = repr(mask_url(value) if isinstance(value, str) else value)
        problem = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        problem = problem[:1].lower() + problem[1:]
        parts.append(f"{var}: {shown} is invalid ({problem}) — {_fix(field)}")
    return "; ".join(parts)


def unknown_variables(environ: Mapping[str, str], *, once: bool = False) -> list[str]:
    """One warning per ``RL_COMMONS_*`` variable in ``environ`` that no setting reads,
    naming the closest setting (a misspelt name is otherwise silently ignored).

    ``once``: leave out the warnings already returned with ``once`` in this process (the
    CLI prints them at start, ``Settings`` logs the rest), and remember these."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in OTHER_VARIABLES:
            continue
        # compared without the common prefix, which would make every name look close
        rest = upper.removeprefix(ENV_PREFIX)
        close = difflib.get_close_matches(rest, sorted(k[len(ENV_PREFIX) :] for k in known), 1)
        hint = (
            f"did you mean {ENV_PREFIX}{close[0]}?"
            if close
            else "see `rl-commons --help` or the README"
        )
        out.append(f"{name} is not an rl-commons setting and is ignored — {hint}")
    if once:
        out = [line for line in out if line not in _warned]
        _warned.update(out)
    return out
