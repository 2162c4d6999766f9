"""Run the runnable examples in the bandit modules' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "policy_store.bandits._base",
    "policy_store.bandits.lin_ucb",
    "policy_store.bandits.thompson",
    "policy_store._compat",
    "policy_store._state",
    "policy_store._components",
    "policy_store.simulator",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name != "policy_store.bandits._base":
        assert result.attempted > 0, f"{name} has no doctest"
