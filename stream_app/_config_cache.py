"""``ConfigCache``: the worker's policy configs in memory, and the policies it holds.

A policy is **held** (its rewards wait uncommitted instead of going to the DLQ; listed
in ``{prefix}:held`` for ``inspect`` and the dashboard, named in ``/ready``) when Redis
no longer holds what the worker knows it should:

- **lost**: its config is gone and its deletion was never recorded (a wiped Redis, or
  one restarted without persistence), whether the worker knew the policy before or only
  from the record (the policies topic read at start, the changes it relays);
- **behind**: its config is there but its state is older than what the worker already
  applied: the version went down within one epoch (``Head.epoch``; a Redis restored from
  an older snapshot). The rewards applied since the snapshot were committed: only a
  rebuild from Kafka brings them back.

It is released once ``rl-commons rebuild`` of it finished (a new epoch, no
``{name}:rebuilding`` marker), once its config is back (re-created) for a lost one, or
once its deletion is recorded (``rl-commons policy delete``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

from policy_store import (
    Head,
    PolicyConfig,
    PolicyRecord,
    PolicyStore,
    RedisPolicyStore,
    RewardSpec,
    UnknownPolicyError,
)

from ._record import rebuilding_key

log = logging.getLogger(__name__)


def held_key(prefix: str) -> str:
    """The hash of policies whose rewards the workers hold (name -> JSON since, reason;
    read by ``held_policies``)."""
    return f"{prefix}:held"


class ConfigCache:
    """Policy configs kept in memory, refreshed by a timer and at once on a recorded change.

    A name not in the cache is looked up once (one Redis GET) and, if it does not
    exist, remembered as unknown for ``negative_ttl`` seconds, so a flood of events
    for a missing policy costs one round trip per second, not one per event; a name the
    record holds (``remember``) is known all the same, with its recorded config.

    ``reload(name)`` reads one config again (at most every ``reload_interval`` s per
    name): validation asks before it refuses an unknown arm, and the change relay after
    every recorded change. ``lost(name)`` and ``behind(name, head)`` say why a policy is
    held (module docstring), ``waiting(name)`` whether it still is; the config of a lost
    policy stays cached, so the join goes on.
    """

    def __init__(
        self, store: PolicyStore, negative_ttl: float = 1.0, reload_interval: float = 0.1
    ) -> None:
        self.store = store
        self.negative_ttl = negative_ttl
        self.reload_interval = reload_interval
        self._configs: dict[str, PolicyConfig] = {}
        self._recorded: dict[str, PolicyConfig] = {}
        self._unknown: dict[str, float] = {}
        self._reloaded: dict[str, float] = {}
        self._deleted: set[str] = set()
        self._lost: dict[str, str] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # name -> (epoch, highest version)
        self._behind: dict[str, str] = {}  # name -> the epoch found behind

    def __call__(self, name: str) -> PolicyConfig | None:
        return self.get(name)

    def refresh(self) -> None:
        """Reload every policy's config (blocking; a few Redis round trips). A policy
        known before and missing now is kept (lost) unless its deletion was recorded."""
        configs = {}
        for name in self.store.list_policies():
            try:
                configs[name] = self.store.get_config(name)
            except Exception:  # deleted meanwhile or unreadable: leave it out
                continue
            if name in self._lost:
                self.waiting(name)  # found again unless a rebuild of it still runs
        for name, cfg in self._configs.items():
            if name not in configs and name not in self._deleted:
                configs[name] = cfg
        self._configs = configs

    def get(self, name: str) -> PolicyConfig | None:
        cfg = self._configs.get(name)
        if cfg is not None:
            return cfg
        now = time.monotonic()
        if self._unknown.get(name, 0.0) > now:
            return None
        cfg = self._read(name) or self._recorded.get(name)  # recorded: lost from Redis
        if cfg is None:
            if len(self._unknown) > 10_000:
                self._unknown = {k: t for k, t in self._unknown.items() if t > now}
            self._unknown[name] = now + self.negative_ttl
            return None
        self._configs = {**self._configs, name: cfg}
        return cfg

    def _read(self, name: str) -> PolicyConfig | None:
        try:
            return self.store.get_config(name)
        except UnknownPolicyError:
            return None
        except Exception as exc:  # store down: unknown for now
            log.warning("could not read the config of policy %r: %s", name, exc)
            return None

    def reload(self, name: str, force: bool = False) -> PolicyConfig | None:
        """The config of ``name`` read again now (None: none in the store); without
        ``force`` at most once per ``reload_interval`` s per name (else the cached one)."""
        now = time.monotonic()
        if not force and self._reloaded.get(name, 0.0) > now:
            return self._configs.get(name)
        self._reloaded[name] = now + self.reload_interval
        cfg = self._read(name)
        if cfg is not None:
            self._deleted.discard(name)
            self._unknown.pop(name, None)
            self._configs = {**self._configs, name: cfg}
            if name in self._lost:
                self.waiting(name)  # found again unless a rebuild of it still runs
        return cfg

    def remember(self, records: Iterable[PolicyRecord]) -> None:
        """What the record says exists (the policies topic, read when the worker starts):
        a policy it holds and Redis lacks is lost, not unknown."""
        for r in records:
            if r.config is not None:
                self._recorded[r.name] = PolicyConfig.from_json(r.config)
                self._unknown.pop(r.name, None)

    def on_record(self, record: PolicyRecord) -> None:
        """A recorded change (``ChangeRelay``): forget a deleted policy, reload another."""
        if record.config is None:
            self._deleted.add(record.name)
            self._recorded.pop(record.name, None)
            self._configs = {k: v for k, v in self._configs.items() if k != record.name}
            self.found(record.name)
        else:
            self.remember([record])
            self.reload(record.name, force=True)

    def lost(self, name: str) -> str | None:
        """Why ``name``, which the store does not hold, is lost rather than deleted (the
        cache knew it, or the record has it, and no deletion was recorded), or None."""
        if name in self._deleted or name not in self._configs:
            return None
        if name not in self._lost:
            self._hold(
                name,
                f"its config is gone from Redis but its deletion was never recorded (Redis "
                f"wiped or restarted without persistence?); its rewards wait uncommitted — "
                f"restore it with `rl-commons rebuild {name}` (or re-create it)",
            )
        return self._lost[name]

    def behind(self, name: str, head: Head) -> str | None:
        """Why ``name``'s state is older than what this worker saw (its version went down
        within one epoch: a Redis restored from an older snapshot), or None; the policy
        is then held until it is rebuilt (or deleted). Keeps the highest version seen."""
        seen = self._seen.get(name)
        if head.epoch is None or seen is None or seen[0] != head.epoch:
            if head.epoch is not None:
                self._seen[name] = (head.epoch, head.version)
            return None
        if head.version >= seen[1]:
            if head.version > seen[1]:
                self._seen[name] = (head.epoch, head.version)
            return None
        if name not in self._lost:
            self._behind[name] = head.epoch
            self._hold(
                name,
                f"its state in Redis is older than what this worker applied (version "
                f"{head.version} < {seen[1]}: Redis restored from an older snapshot?); the "
                f"rewards applied since are only in Kafka; its rewards wait uncommitted — "
                f"restore it with `rl-commons rebuild {name} --replace` (or delete it)",
            )
        return self._lost[name]

    def saw(self, name: str, epoch: str | None, version: int) -> None:
        """``version`` of ``name`` was written by this worker (an apply)."""
        seen = self._seen.get(name)
        if epoch is not None and (seen is None or seen[0] != epoch or version > seen[1]):
            self._seen[name] = (epoch, version)

    def waiting(self, name: str) -> str | None:
        """Why the rewards of a held policy still wait (None when it is not held, or was
        released: module docstring)."""
        if name not in self._lost:
            return None
        why = self._lost[name]
        if isinstance(self.store, RedisPolicyStore):
            k = self.store.keys(name)
            try:
                got = self.store.client.mget([k.config, rebuilding_key(k), k.extra("epoch")])
            except Exception:  # Redis down: keep waiting
                return why
            config, rebuilding, epoch = got
            if rebuilding is not None:
                return f"being rebuilt (rl-commons rebuild); {why}"
            if config is None:
                return why
            epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
            if name in self._behind and epoch == self._behind[name]:
                return why
        elif self._read(name) is None:
            return why
        self.found(name)
        return None

    def found(self, name: str) -> None:
        """``name`` has its config again (or was deleted, or rebuilt): no longer held."""
        self._behind.pop(name, None)
        self._seen.pop(name, None)
        if self._lost.pop(name, None) is not None:
            self._mark_held(name, None)

    def _hold(self, name: str, why: str) -> None:
        self._lost[name] = why  # the engine logs it once, with the rewards it holds
        self._mark_held(name, why)

    def _mark_held(self, name: str, why: str | None) -> None:
        if not isinstance(self.store, RedisPolicyStore):
            return
        key, client = held_key(self.store.prefix), self.store.client
        try:
            if why is None:
                client.hdel(key, name)
            else:
                client.hset(key, name, json.dumps({"since": time.time(), "reason": why}))
        except Exception as exc:  # Redis down: /ready still says it
            log.debug("could not mark policy %r held: %s", name, exc)

    def spec(self, name: str | None) -> RewardSpec | None:
        cfg = self.get(name) if name else None
        return cfg.reward if cfg is not None else None
