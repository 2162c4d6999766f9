"""Build an algorithm object from a policy's ``AlgorithmConfig``."""

from __future__ import annotations

from .._config import AlgorithmConfig
from ._base import Algorithm
from .lin_ucb import LinUCB
from .thompson import LinearThompson


def make_algorithm(cfg: AlgorithmConfig) -> Algorithm:
    if cfg.name == "linucb":
        return LinUCB(
            alpha=cfg.alpha, epsilon=cfg.epsilon, ridge=cfg.ridge, forgetting=cfg.forgetting
        )
    if cfg.name == "ts":
        return LinearThompson(
            scale=cfg.ts_scale,
            epsilon=cfg.epsilon,
            ridge=cfg.ridge,
            forgetting=cfg.forgetting,
            n_samples=cfg.ts_samples,
        )
    raise ValueError(f"unknown algorithm {cfg.name!r}; use 'linucb' or 'ts'")
