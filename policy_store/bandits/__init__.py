"""Bandit algorithms over additive sufficient statistics (pure numpy, no I/O)."""

from ._base import Algorithm, Selection, Snapshot
from ._registry import algorithm_names, make_algorithm
from .lin_ucb import LinUCB
from .thompson import LinearThompson

__all__ = [
    "Algorithm",
    "LinUCB",
    "LinearThompson",
    "Selection",
    "Snapshot",
    "algorithm_names",
    "make_algorithm",
]
