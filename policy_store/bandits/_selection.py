"""Selection arithmetic shared by every algorithm: sampling an index, checking a context,
θᵀx and xᵀA⁻¹x on a snapshot (the hot path), and the offered arms as indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._base import Snapshot


def draw(p: np.ndarray | list[float], u: float) -> int:
    """Index i with cumulative probability just above ``u`` ∈ [0, 1): sampling from ``p``.

    A plain loop over K floats is several times faster than ``Generator.choice``
    for the handful of arms a policy has.

    >>> draw(np.array([0.2, 0.5, 0.3]), 0.69)
    1
    """
    acc = 0.0
    probs = p.tolist() if isinstance(p, np.ndarray) else p
    for i, pi in enumerate(probs):
        acc += pi
        if u < acc:
            return i
    return len(probs) - 1  # u within rounding of 1.0


def check_features(snap: Snapshot, x: np.ndarray) -> None:
    """Refuse a context of the wrong size with a message that says what to fix."""
    if x.shape != (snap.d,):
        raise ValueError(
            f"feature vector has shape {x.shape}, the policy expects ({snap.d},); "
            "pass exactly n_features numbers"
        )


def means_and_variances(
    snap: Snapshot, x: np.ndarray, idx: np.ndarray | None = None
) -> tuple[list[float], list[float]]:
    """θ_kᵀx and xᵀA_k⁻¹x for the arms ``idx`` (all when None), as plain floats.

    The hot path of selection: a couple of small products, then Python floats,
    because for a handful of arms each further numpy call costs more than the
    arithmetic it does.
    """
    check_features(snap, x)
    if idx is None and snap.stacked is not None:
        K = len(snap.arms)
        y = snap.stacked.dot(x)
        return y[:K].tolist(), y[K:].reshape(K, snap.d).dot(x).tolist()
    theta, a_inv = (snap.theta, snap.a_inv) if idx is None else (snap.theta[idx], snap.a_inv[idx])
    return theta.dot(x).tolist(), a_inv.dot(x).dot(x).tolist()


def offered_index(snap: Snapshot, offered: Sequence[int] | None) -> np.ndarray | None:
    """Offered arms as an index array, or None for all arms (the fast path)."""
    if offered is None:
        return None
    idx = np.asarray(offered, dtype=np.intp)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError("offered must be a non-empty sequence of arm indices")
    if idx.min() < 0 or idx.max() >= len(snap.arms):
        raise ValueError(f"offered arm indices {idx.tolist()} out of range 0..{len(snap.arms) - 1}")
    return idx
