"""Exceptions of policy_store.

RLCommonsError
├── ConfigError          a policy config is invalid (message names the field and the fix)
├── UnknownPolicyError   no policy of that name in the store
├── UnknownArmError      an arm the policy does not have
├── InvalidDeltaError    a delta of the wrong dimension or with a non-finite number
└── StoreUnavailableError  the backing store (Redis) cannot be reached
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


class StoreUnavailableError(RLCommonsError, ConnectionError):
    """The policy store (Redis) could not be reached."""
