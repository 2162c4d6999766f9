"""The root of rl-commons' exceptions and the errors of policy_store.

RLCommonsError                     the root
├── ConfigError (ValueError)       a policy config is invalid (message names the field and the fix)
├── UnknownPolicyError (KeyError)  no policy of that name in the store
├── UnknownArmError (KeyError)     an arm the policy does not have
├── InvalidDeltaError (ValueError) a delta of the wrong dimension or with a non-finite number
├── NoSnapshotError (LookupError)  a PolicyReader has not loaded its policy yet
└── StoreError                     the backing store (Redis) answered with an error
    └── StoreUnavailableError (ConnectionError)  it cannot be reached or refused the credentials

The builtin in brackets is a second base, so callers that catch it keep working.
The rule for the other packages (producers, stream_app): their errors subclass
``RLCommonsError`` too, so ``except RLCommonsError`` catches every error rl-commons
raises on purpose. Redis errors become the errors above in one place,
``RedisPolicyStore.run`` (``_redis._translate``), raised ``from`` the redis error.
"""

from __future__ import annotations


class RLCommonsError(Exception):
    """Base class of every error raised by rl-commons."""


class ConfigError(RLCommonsError, ValueError):
    """A policy configuration is invalid."""


class UnknownPolicyError(RLCommonsError, KeyError):
    """The named policy does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown policy"


class UnknownArmError(RLCommonsError, KeyError):
    """The arm is not one of the policy's arms."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown arm"


class InvalidDeltaError(RLCommonsError, ValueError):
    """A state delta has the wrong shape or a non-finite number; nothing was changed."""


class NoSnapshotError(RLCommonsError, LookupError):
    """The reader has not loaded the policy yet (store unreachable or policy missing)."""


class StoreError(RLCommonsError):
    """The policy store (Redis) answered a request with an error."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The policy store (Redis) could not be reached or refused the credentials."""
