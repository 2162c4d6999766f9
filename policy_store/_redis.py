"""``RedisPolicyStore``: configs and state in Redis, batches applied by one Lua script."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

import redis

from ._components import ComponentStats
from ._config import PolicyConfig
from ._errors import (
    ConfigError,
    InvalidDeltaError,
    RLCommonsError,
    StoreError,
    StoreUnavailableError,
    UnknownPolicyError,
)
from ._keys import PolicyKeys, registry_key
from ._record import CHANGES_MAXLEN, PolicyRecord, changes_key
from ._settings import Settings
from ._state import ArmStats, Observation, PolicyState, decay_factor
from ._store import (
    DEDUPE_BUCKET_SECONDS,
    ApplyRequest,
    Head,
    PolicyStore,
    check_compatible,
    check_dimension,
    dedupe_bucket,
)

T = TypeVar("T")


def _translate(exc: redis.RedisError, url: str) -> RLCommonsError:
    """The one place a redis-py error becomes an rl-commons error (raise it ``from exc``)."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return StoreUnavailableError(
            f"Redis at {url} refused the credentials; "
            "set RL_COMMONS_REDIS_URL (or RL_COMMONS_REDIS_PASSWORD) with the right password"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return StoreUnavailableError(
            f"Redis unreachable at {url} ({exc}); "
            "start it (rl-commons dev) or set RL_COMMONS_REDIS_URL"
        )
    message = str(exc)
    if isinstance(exc, redis.ResponseError) and "NOPOLICY" in message:
        # apply.lua: the policy's config key is missing (the message names the key)
        return UnknownPolicyError(
            f"no policy at {message.split('NOPOLICY', 1)[1].strip()} in Redis at {url}; "
            "create it with `rl-commons policy create` or check RL_COMMONS_REDIS_URL"
        )
    if isinstance(exc, redis.ResponseError) and ("BADDELTA" in message or "BADDIM" in message):
        return InvalidDeltaError(message)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in message:
        # maxmemory reached (with noeviction, as the keys need): a condition to retry
        return StoreUnavailableError(
            f"Redis at {url} is out of memory (maxmemory reached; nothing was applied): "
            "raise maxmemory or free memory; keep maxmemory-policy noeviction "
            "(docs/operations.md, Redis memory)"
        )
    return StoreError(f"Redis at {url} answered with an error: {message}")


class RedisPolicyStore(PolicyStore):
    """Policies in Redis under ``{prefix}:{name}:…`` (see ``policy_store._keys``)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "rlc",
        clock: Any = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._clock = clock
        self._head_cache: dict[str, tuple[bytes, PolicyConfig]] = {}
        lua = resources.files(__package__)
        self._apply_script = client.register_script(lua.joinpath("apply.lua").read_text())
        self._record_script = client.register_script(lua.joinpath("record.lua").read_text())

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "rlc", **kwargs: Any) -> RedisPolicyStore:
        """Connect lazily to ``url`` (redis://, rediss:// for TLS, password in the URL)."""
        kwargs.setdefault("socket_timeout", 2.0)
        kwargs.setdefault("socket_connect_timeout", 2.0)
        client = redis.Redis.from_url(url, **kwargs)
        return cls(client, prefix=prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisPolicyStore:
        """The store ``settings`` describe: ``redis_url``, ``key_prefix``, ``redis_password``."""
        return cls.from_url(
            settings.redis_url, prefix=settings.key_prefix, **settings.redis_kwargs()
        )

    @property
    def url(self) -> str:
        kw = self.client.connection_pool.connection_kwargs
        return f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"

    def keys(self, name: str) -> PolicyKeys:
        return PolicyKeys(self.prefix, name)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with redis errors translated to rl-commons errors.

        Every Redis call of this store goes through here; tools that read their own
        keys (e.g. ``store.run(store.client.hgetall, store.keys(name).state)``) use it
        to get the same errors: ``StoreUnavailableError`` when Redis cannot be reached
        or refuses the credentials, ``StoreError`` for any other Redis error.
        """
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise _translate(exc, self.url) from exc

    def _unknown(self, name: str) -> UnknownPolicyError:
        return UnknownPolicyError(
            f"no policy named {name!r} in Redis at {self.url} (prefix {self.prefix!r}); "
            "create it with `rl-commons policy create` or check RL_COMMONS_REDIS_URL"
        )

    # -- configs (every change recorded with it: policy_store._record) ---------------------
    def create(self, config: PolicyConfig, *, exist_ok: bool = False) -> PolicyConfig:
        created = self._record(self.client, config.name, "create", create=config.to_json())
        if created is None:
            if exist_ok:
                return self.get_config(config.name)
            raise ConfigError(
                f"policy {config.name!r} already exists; delete it first or pick another name"
            )
        return config

    def _record(
        self,
        client: Any,
        name: str,
        change: str,
        *,
        create: str = "",
        created_at: float | None = None,
        marks: Mapping[int, int] | None = None,
    ) -> Any:
        """``record.lua`` for ``change`` of ``name``, on ``client`` (the store's connection,
        or a MULTI pipeline that makes the change: the record is queued after it)."""
        k = self.keys(name)
        keys = [
            k.config,
            k.extra("record"),
            k.applied,
            k.extra("epoch"),
            changes_key(self.prefix),
            k.version,
            registry_key(self.prefix),
        ]
        args = [
            json.dumps(name),
            change,
            repr(float(self._clock())),
            CHANGES_MAXLEN,
            "" if created_at is None else repr(float(created_at)),
            "" if marks is None else json.dumps({str(p): int(o) for p, o in marks.items()}),
            create,
            name,
        ]
        if client is self.client:
            return self.run(self._record_script, keys=keys, args=args)
        return self._record_script(keys=keys, args=args, client=client)

    def get_config(self, name: str) -> PolicyConfig:
        raw = self.run(self.client.get, self.keys(name).config)
        if raw is None:
            raise self._unknown(name)
        return PolicyConfig.from_json(raw)

    def put_config(self, config: PolicyConfig) -> PolicyConfig:
        old = self.get_config(config.name)
        check_compatible(old, config)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys(config.name).config, config.to_json(), xx=True)
        self._record(pipe, config.name, "config")
        self.run(pipe.execute)
        return config

    def list_policies(self) -> list[str]:
        names = self.run(self.client.smembers, registry_key(self.prefix))
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    def delete(self, name: str) -> None:
        self.get_config(name)
        self._drop(name, record=True)

    def record_deletion(self, name: str) -> PolicyRecord:
        """Record the deletion of a policy whose config is already gone (a wiped Redis, a
        restored snapshot without it) and drop what is left of its keys: workers holding
        its rewards then dead-letter them and a rebuild no longer restores it. Refuses
        (``ConfigError``) a policy Redis still holds: ``delete`` it."""
        if self.run(self.client.exists, self.keys(name).config):
            raise ConfigError(f"policy {name!r} is in Redis: delete it, do not only record it")
        return PolicyRecord.from_bytes(self._drop(name, record=True))

    def restore(
        self, record: PolicyRecord, *, replace: bool = False, keep: Collection[str] = ()
    ) -> PolicyConfig:
        """Create ``record``'s config with its cuts (``created_at``, ``reset_marks``) and a
        new epoch, recorded as a ``rebuild`` change; ``replace`` drops what Redis holds of
        the policy first (but the keys in ``keep``), in the same atomic step.
        ``ConfigError`` if it exists and not ``replace``."""
        if record.config is None:
            raise ConfigError(f"the record of {record.name!r} is a deletion: nothing to restore")
        config = PolicyConfig.from_json(record.config)
        pipe = self.client.pipeline(transaction=True)
        if replace:
            self._drop(record.name, record=False, pipe=pipe, keep=keep)
        self._record(
            pipe,
            record.name,
            "rebuild",
            create=config.to_json(),
            created_at=record.created_at,
            marks=record.reset_marks,
        )
        if self.run(pipe.execute)[-1] is None:
            raise ConfigError(f"policy {record.name!r} exists; pass replace=True")
        return config

    def _drop(
        self, name: str, *, record: bool, pipe: Any = None, keep: Collection[str] = ()
    ) -> Any:
        """Every key of ``name`` and its registry entry, after its deletion's record (with
        ``record``), in one MULTI (``pipe``'s when given: it is not executed here)."""
        k = self.keys(name)
        pattern = f"{k.base}:*"
        to_delete = [k.config, k.state, k.version, k.updated_at]
        # scan_iter is lazy: list() runs the whole scan inside run()
        to_delete += self.run(lambda: list(self.client.scan_iter(match=pattern, count=1000)))
        kept = {k.encode() for k in keep} | set(keep)
        to_delete = [key for key in to_delete if key not in kept]
        own = pipe is None
        pipe = self.client.pipeline(transaction=True) if own else pipe
        if record:
            self._record(pipe, name, "delete")
        for i in range(0, len(to_delete), 500):
            pipe.delete(*to_delete[i : i + 500])
        pipe.srem(registry_key(self.prefix), name)
        return self.run(pipe.execute)[0] if own else None

    # -- state ---------------------------------------------------------------------------------
    def head(self, name: str) -> Head:
        k = self.keys(name)
        got = self.run(self.client.mget, [k.config, k.version, k.updated_at, k.extra("epoch")])
        raw_cfg, raw_v, raw_t, raw_epoch = got
        if raw_cfg is None:
            raise self._unknown(name)
        return Head(
            version=int(raw_v or 0),
            config=self._parsed_config(name, raw_cfg),
            updated_at=float(raw_t) if raw_t else None,
            epoch=raw_epoch.decode() if isinstance(raw_epoch, bytes) else raw_epoch,
        )

    def _parsed_config(self, name: str, raw: bytes) -> PolicyConfig:
        """The config from its stored bytes, parsed once per change (polled every 100 ms)."""
        cached = self._head_cache.get(name)
        if cached is not None and cached[0] == raw:
            return cached[1]
        config = PolicyConfig.from_json(raw)
        self._head_cache[name] = (raw, config)
        return config

    def read_state(self, name: str) -> PolicyState:
        k = self.keys(name)
        pipe = self.client.pipeline(transaction=True)  # MULTI: state and version agree
        pipe.get(k.config)
        pipe.hgetall(k.state)
        pipe.get(k.version)
        pipe.get(k.updated_at)
        raw_cfg, fields, raw_v, raw_t = self.run(pipe.execute)
        if raw_cfg is None:
            raise self._unknown(name)
        d = self._parsed_config(name, raw_cfg).n_features
        fields = {(f.decode() if isinstance(f, bytes) else f): v for f, v in fields.items()}
        arms: dict[str, ArmStats] = {}
        for field in fields:
            if not field.startswith("n:"):
                continue
            arm = field[2:]
            try:
                arms[arm] = ArmStats.from_bytes(
                    fields[f"xx:{arm}"],
                    fields[f"b:{arm}"],
                    fields[field],
                    d,
                    _components(fields, arm, d),
                )
            except (KeyError, InvalidDeltaError):
                continue  # a half-written or foreign field: ignore, never guess
        return PolicyState(
            arms=arms,
            version=int(raw_v or 0),
            updated_at=float(raw_t) if raw_t else None,
            dual=float(fields.get("dual") or 0.0),
        )

    def watch(self, name: str) -> _ChannelWatch:
        """Subscribe to the policy's version channel (``{prefix}:{name}:versions``)."""
        return self.run(_ChannelWatch, self.client, self.keys(name).channel, self.run)

    def reset(self, name: str) -> int:
        self.get_config(name)
        k = self.keys(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(k.state)
        pipe.incr(k.version)
        pipe.set(k.updated_at, repr(self._clock()))
        self._record(pipe, name, "reset")  # its cut: the watermarks at the reset
        _, version, _, _ = self.run(pipe.execute)
        self.run(self.client.publish, k.channel, str(version))
        return int(version)

    def _apply_deltas(self, req: ApplyRequest) -> tuple[int, list[str]]:
        config, batch, deltas = req.config, req.batch, req.deltas
        dual_delta, marks, window = req.dual_delta, req.marks, req.window
        k = self.keys(config.name)
        keys = [k.config, k.state, k.version, k.updated_at, k.applied]
        args: list[Any] = [
            config.dedupe_ttl_seconds,
            repr(float(self._clock())),
            k.channel,
            config.n_features,
            repr(float(dual_delta)),
            len(deltas),
            0 if marks is None else len(marks),
            k.seen_prefix,
            repr(float(window)),
            repr(DEDUPE_BUCKET_SECONDS),
        ]
        order: list[Observation] = list(batch)
        if marks is None:
            keys += [k.dedupe(o.decision_id) for o in batch]
        else:
            order = _position_args(batch, marks, args)
        gamma = config.algorithm.forgetting
        for arm, delta in deltas.items():
            factor = decay_factor(gamma, delta.n)  # apply.lua: new = old·factor + delta
            args += [arm, repr(factor), repr(delta.n), delta.xx_bytes(), delta.b_bytes()]
            c = delta.components
            if c is None:
                args += [b"", b"", ""]
            else:
                args += [c.blob(), c.xx_bytes(), "" if c.n is None else repr(c.n)]
        try:
            res = self.run(self._apply_script, keys=keys, args=args)
        except UnknownPolicyError as exc:  # the script found no config: name the policy
            raise self._unknown(config.name) from exc
        except InvalidDeltaError as exc:
            if "BADDIM" in str(exc):  # the stored config has another n_features
                check_dimension(self.get_config(config.name), config)
            raise
        tag = res[0].decode() if isinstance(res[0], bytes) else res[0]
        if tag == "dup":
            return 0, [order[int(i) - 1].decision_id for i in res[1:]]
        return int(res[1]), []


def _position_args(
    batch: Sequence[Observation], marks: Mapping[int, int], args: list[Any]
) -> list[Observation]:
    """apply.lua's per-partition arguments for ``batch`` (appended to ``args``); returns the
    observations in argument order (the script names duplicates by that order)."""
    by_part: dict[int, list[Observation]] = {p: [] for p in marks}
    for o in batch:
        by_part[o.position[0]].append(o)  # type: ignore[index]
    order: list[Observation] = []
    for p, items in by_part.items():
        made = max((o.position[2] for o in items), default=0.0)  # type: ignore[index]
        args += [p, marks[p], repr(float(made)), len(items)]
        for o in items:
            _, offset, made_at = o.position  # type: ignore[misc]
            args += [o.decision_id, offset, dedupe_bucket(made_at)]
        order += items
    return order


def _components(fields: dict[str, bytes], arm: str, d: int) -> ComponentStats | None:
    """An arm's component sums from the state hash (``y:``, and ``xc:``/``nc:`` for a
    legacy arm; see ``_keys``), or None when it has none."""
    blob = fields.get(f"y:{arm}")
    if blob is None:
        return None
    return ComponentStats.from_bytes(blob, d, fields.get(f"xc:{arm}"), fields.get(f"nc:{arm}"))


class _ChannelWatch:
    """The version channel of one policy on its own pub/sub connection.

    ``run`` is the store's ``RedisPolicyStore.run``: redis errors are translated there.
    """

    def __init__(self, client: Any, channel: str, run: Callable[..., Any]) -> None:
        self._run = run
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)

    def wait(self, timeout: float) -> bool:
        return self._run(self._wait, timeout)

    def _wait(self, timeout: float) -> bool:
        got = self._pubsub.get_message(timeout=timeout) is not None
        # versions published meanwhile are one refresh: drain them
        while got and self._pubsub.get_message(timeout=0) is not None:
            pass
        return got

    def close(self) -> None:
        self._run(self._pubsub.close)
