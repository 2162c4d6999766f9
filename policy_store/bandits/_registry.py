"""The algorithms a policy can name, and how each is built from its ``AlgorithmConfig``.

To add an algorithm: a module beside ``lin_ucb.py`` with an ``Algorithm`` subclass, its
name in ``AlgorithmConfig.name`` (and any new hyperparameter fields there), and one entry
in ``BUILDERS``. tests/unit/test_bandit_conformance.py then runs every conformance check
on it.
"""

from __future__ import annotations

from collections.abc import Callable

from .._config import AlgorithmConfig
from ._base import Algorithm
from .lin_ucb import LinUCB
from .thompson import LinearThompson

#: ``AlgorithmConfig.name`` → the algorithm with that config's hyperparameters
BUILDERS: dict[str, Callable[[AlgorithmConfig], Algorithm]] = {
    "linucb": lambda cfg: LinUCB(
        alpha=cfg.alpha, epsilon=cfg.epsilon, ridge=cfg.ridge, forgetting=cfg.forgetting
    ),
    "ts": lambda cfg: LinearThompson(
        scale=cfg.ts_scale,
        epsilon=cfg.epsilon,
        ridge=cfg.ridge,
        forgetting=cfg.forgetting,
        n_samples=cfg.ts_samples,
    ),
}


def algorithm_names() -> tuple[str, ...]:
    """The names ``AlgorithmConfig.name`` can take, in registration order."""
    return tuple(BUILDERS)


def make_algorithm(cfg: AlgorithmConfig) -> Algorithm:
    """The algorithm a policy's config names, with its hyperparameters."""
    build = BUILDERS.get(cfg.name)
    if build is None:
        raise ValueError(f"unknown algorithm {cfg.name!r}; use one of {list(BUILDERS)}")
    return build(cfg)
