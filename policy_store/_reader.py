"""``PolicyReader``: the proxy's local, immutable copy of a policy.

A background thread reads the store's head (version + config, one Redis MGET)
every ``poll_interval`` seconds and, when the version moved, reads the state
and swaps in a new precomputed ``Snapshot``. With a store that announces new
versions (Redis pub/sub on ``{prefix}:{name}:versions``) the thread also wakes
as soon as a version is published, so a new snapshot is in use a few
milliseconds after the worker applied a batch rather than half a poll interval
later on average; the poll stays as the fallback (and confirms staleness).
``select`` only reads the current snapshot: it never touches the network. If
the store is unreachable the last snapshot stays in use and ``staleness``
grows; callers decide (with the policy's ``max_staleness_seconds``) when it is
too old.

No poison pill: a snapshot holding any number that is not finite (θ, A⁻¹, its factor,
the counts, the component estimates, λ; e.g. an infinity written into the state by a
manual edit or an older version) is refused: the previous snapshot stays in use (its
staleness grows, so the selector serves the baseline once it is too old), the refusal
is counted (``refused``) and logged once per version, and that version is not read
again until the head moves.

Snapshots are built with the policy's objective (``build_snapshot``): θ holds the
objective's estimates at the state's multiplier λ, so ``select`` is the same
whatever the objective, and a config change (reward weights, objective) is in the
next snapshot without relearning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ._config import PolicyConfig
from ._constraint import snapshot_weights
from ._errors import NoSnapshotError
from ._state import ArmStats, PolicyState
from ._store import PolicyStore
from .bandits import Algorithm, Selection, Snapshot, make_algorithm

log = logging.getLogger(__name__)

WATCH_RETRY_SECONDS = 5.0  # after a failed subscription, poll this long before trying again


def build_snapshot(algorithm: Algorithm, config: PolicyConfig, state: PolicyState) -> Snapshot:
    """The snapshot of ``state`` under ``config``: θ weighted by the objective at the
    state's λ (``snapshot_weights``); a legacy arm keeps its reward sums under the
    weighted objective and uses its component sums under a constrained one."""
    return algorithm.snapshot(
        state,
        config.arms,
        config.n_features,
        snapshot_weights(config, state),
        legacy_reward=not config.objective.constrained,
    )


@dataclass(frozen=True)
class ReaderView:
    """Everything ``select`` needs, swapped atomically as one object."""

    config: PolicyConfig
    algorithm: Algorithm
    snapshot: Snapshot
    loaded_at: float


class PolicyReader:
    """Keeps an up-to-date snapshot of ``policy`` from ``store``.

    ``poll_interval``: seconds between head reads. ``notify``: also wake on the store's
    version announcements (``PolicyStore.watch``; Redis pub/sub) - on by default.

    >>> from policy_store import InMemoryPolicyStore, make_config
    >>> store = InMemoryPolicyStore()
    >>> _ = store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    >>> with PolicyReader(store, "p", seed=0) as reader:
    ...     reader.select([1.0, 0.0]).arm in ("a", "b")
    True
    """

    def __init__(
        self,
        store: PolicyStore,
        policy: str,
        *,
        poll_interval: float = 0.1,
        seed: int | np.random.Generator | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
        notify: bool = True,
    ) -> None:
        self.store = store
        self.policy = policy
        self.poll_interval = poll_interval
        self.notify = notify
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._clock = clock
        self._view: ReaderView | None = None
        self._last_ok: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_errors = 0
        self.refreshes = 0
        self.refused = 0  # snapshots refused because they held a non-finite number
        self._refused_head: tuple[int, PolicyConfig] | None = None
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> PolicyReader:
        """Load once (best effort) and start the background refresh thread."""
        if self._thread is not None:
            return self
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"policy-reader-{self.policy}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> PolicyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        watch, retry_at = None, 0.0
        try:
            while not self._stop.is_set():
                if watch is None and self.notify and time.monotonic() >= retry_at:
                    watch = self._open_watch()
                    if watch is None:
                        retry_at = time.monotonic() + WATCH_RETRY_SECONDS
                if watch is None:
                    if self._stop.wait(self.poll_interval):
                        return
                else:
                    try:
                        watch.wait(self.poll_interval)
                    except Exception as exc:  # connection lost: poll until it comes back
                        log.debug("version watch of %s failed: %s", self.policy, exc)
                        self._close_watch(watch)
                        watch, retry_at = None, time.monotonic() + WATCH_RETRY_SECONDS
                        continue
                    if self._stop.is_set():
                        return
                self.refresh()
        finally:
            if watch is not None:
                self._close_watch(watch)

    def _open_watch(self):
        try:
            return self.store.watch(self.policy)
        except Exception as exc:
            log.debug("cannot watch versions of %s: %s", self.policy, exc)
            return None

    @staticmethod
    def _close_watch(watch) -> None:
        try:
            watch.close()
        except Exception:
            pass

    # -- refresh ---------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """One poll; returns True when a new snapshot was installed. Never raises."""
        try:
            head = self.store.head(self.policy)
            view = self._view
            if view is not None and head.version == view.snapshot.version:
                if head.config is view.config or head.config == view.config:
                    self._last_ok = self._clock()
                    return False
            refused = self._refused_head
            if refused is not None and refused[0] == head.version and refused[1] == head.config:
                return False  # refused already: wait for the next version
            state = self.store.read_state(self.policy)
            bad = _state_non_finite(state)
            if bad is not None:  # refused before building: the algebra may not even run
                return self._refuse(head.version, head.config, bad)
            algo = make_algorithm(head.config.algorithm)
            return self._install(head.config, algo, build_snapshot(algo, head.config, state))
        except Exception as exc:  # the proxy must keep serving whatever happens here
            self.refresh_errors += 1
            log.debug("policy refresh failed for %s: %s", self.policy, exc)
            return False

    def refresh_applied(self, arms: Collection[str], version: int) -> bool:
        """Install ``version`` when it is the current snapshot's version plus one ``apply``
        that changed only ``arms`` (the caller's ``ApplyResult.version``): only those arms
        are refactorised, from the store's statistics; when the objective's weights moved (a
        constrained objective's λ changed, or the first component sums arrived) θ is
        recomputed at the new weights from the arrays of the snapshot, without refactorising
        the other arms (``Snapshot.with_arm(..., weights=)``). Anything else (another version
        in between, a config change, a new arm) falls back to ``refresh``. Never raises."""
        try:
            view = self._view
            if view is None or view.snapshot.version != version - 1:
                return self.refresh()
            head = self.store.head(self.policy)
            state = self.store.read_state(self.policy)
            if state.version != version or not (
                head.config is view.config or head.config == view.config
            ):
                return self.refresh()
            snap = view.snapshot
            changes = {"dual": state.dual, "version": state.version, "updated_at": state.updated_at}
            if view.config.objective.constrained or snap.weights is None:
                # λ may have moved, or the first component sums arrived (same config: the
                # weighted objective's weights cannot have changed otherwise)
                weights = snapshot_weights(view.config, state)
                if not _same(weights, snap.weights):
                    changes["weights"] = weights
            if not arms:
                return self.refresh()
            for arm in arms:
                stats = state.arms.get(arm)
                if stats is None or arm not in snap.index:
                    return self.refresh()
                if not _stats_finite(stats):
                    return self._refuse(state.version, view.config, f"the sums of arm {arm!r}")
                snap = snap.with_arm(arm, stats, **changes)
            return self._install(view.config, view.algorithm, snap)
        except Exception as exc:  # same contract as refresh: the proxy keeps serving
            self.refresh_errors += 1
            log.debug("policy refresh failed for %s: %s", self.policy, exc)
            return False

    def _install(self, config: PolicyConfig, algo: Algorithm, snap: Snapshot) -> bool:
        """Swap ``snap`` in, unless it holds a number that is not finite (then keep the
        current one, count and log the refusal once per version); True when installed."""
        bad = non_finite(snap)
        if bad is not None:
            return self._refuse(snap.version, config, bad)
        self._refused_head = None
        self._view = ReaderView(config, algo, snap, self._clock())
        self._last_ok = self._clock()
        self.refreshes += 1
        return True

    def _refuse(self, version: int, config: PolicyConfig, what: str) -> bool:
        """Keep the current snapshot instead of ``version``; count it, log once per version."""
        self.refused += 1
        if self._refused_head is None or self._refused_head[0] != version:
            log.warning(
                "policy %r version %d refused: a number that is not finite in %s; "
                "keeping version %s",
                self.policy,
                version,
                what,
                self.version,
            )
        self._refused_head = (version, config)
        return False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def view(self) -> ReaderView | None:
        return self._view

    @property
    def config(self) -> PolicyConfig | None:
        v = self._view
        return v.config if v else None

    @property
    def version(self) -> int | None:
        v = self._view
        return v.snapshot.version if v else None

    def staleness(self) -> float:
        """Seconds since the store last confirmed our snapshot is current (inf if never)."""
        last = self._last_ok
        return float("inf") if last is None else max(0.0, self._clock() - last)

    def wait_for_version(self, version: int, timeout: float = 5.0) -> bool:
        """Block until a snapshot of at least ``version`` is installed (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.version
            if v is not None and v >= version:
                return True
            time.sleep(min(0.01, self.poll_interval))
        return False

    def select(
        self, features: Sequence[float] | np.ndarray, offered: Sequence[int] | None = None
    ) -> Selection:
        """Choose an arm for ``features`` from the current snapshot (no network)."""
        view = self._view
        if view is None:
            raise NoSnapshotError(
                f"policy {self.policy!r} not loaded yet (store unreachable or policy missing)"
            )
        x = np.asarray(features, dtype=np.float64)
        if x.shape != (view.snapshot.d,):
            raise ValueError(
                f"feature vector has shape {x.shape}; policy {self.policy!r} expects "
                f"({view.snapshot.d},) — fix the feature function or the policy's n_features"
            )
        return view.algorithm.select(view.snapshot, x, self._rng, offered)


_CHECKED = ("theta", "a_inv", "chol", "n", "stacked", "components", "comp_s", "comp_s2")


def non_finite(snap: Snapshot) -> str | None:
    """Which array of ``snap`` (or its multiplier) holds a number that is not finite,
    or None when every number a selection can use is finite."""
    for name in _CHECKED:
        arr = getattr(snap, name)
        if arr is not None and not np.isfinite(arr).all():
            return f"the snapshot's {name}"
    if not np.isfinite(snap.dual):
        return "the multiplier"
    return None


def _stats_finite(stats: ArmStats) -> bool:
    """Whether every sum of one arm (its component sums included) is finite."""
    if not (np.isfinite(stats.xx).all() and np.isfinite(stats.b).all() and np.isfinite(stats.n)):
        return False
    c = stats.components
    if c is None:
        return True
    parts = (c.y, c.s, c.s2, c.xx, c.n)
    return all(np.isfinite(v).all() for v in parts if v is not None)


def _state_non_finite(state: PolicyState) -> str | None:
    """What in ``state`` is not finite (an arm's sums, or λ), or None."""
    for arm, stats in state.arms.items():
        if not _stats_finite(stats):
            return f"the sums of arm {arm!r}"
    return None if np.isfinite(state.dual) else "the multiplier"


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two optional weight vectors are equal."""
    if a is None or b is None:
        return a is None and b is None
    return a.tolist() == b.tolist()  # C floats: cheaper than numpy's comparison
