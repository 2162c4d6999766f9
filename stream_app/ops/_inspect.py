"""What ``rl-commons inspect`` and the dashboard show about one policy.

Pure functions over values already read from Redis (``PolicyState``, config,
aggregates buckets, health and freshness hashes); ``read_policy_report`` does
the reading. Nothing here writes.

Where each number comes from:

- **n** per arm: the weighted count kept in the learned state (``ArmStats.n``);
  with forgetting (γ < 1) it is the *effective* number of observations.
- **θ** per arm: the ridge estimate the bandits select with (``build_snapshot``):
  ``(λI + Σxxᵀ)⁻¹ Σrx`` for a weighted policy; for a constrained objective the estimate
  of its Lagrangian at the current multiplier (so ``picks`` is what the proxies serve).
- **objective** and **constraint**: what the policy optimises in one line and, for a
  quality floor or a budget, target, buffer, measured mean with its 95% interval, the
  multiplier λ and a verdict (``stream_app.ops._constraint``). The measured mean is
  over every observation that updated the policy (all cohorts); the learned cohort
  alone is in ``rl-commons report``.
- **mean reward**, **share of traffic**, quality / cost / latency: from the
  per-minute aggregates (``stream_app.aggregates``) over the last ``window``
  minutes, i.e. observed rewards of joined decisions, all cohorts together
  (per-cohort figures are in ``cohorts``). The learned state keeps Σxxᵀ and
  Σrx but not Σx or Σr, so it cannot give a model-free mean — and θ·x̄ would
  need x̄. An arm without rewards in the window shows ``None``.
- **staleness**: seconds since the parameters last changed (``updated_at``);
  a large value on a policy that receives traffic means the stream workers
  are not applying updates.
- **join rate**: joined / (joined + expired) — the share of decisions whose
  outcome arrived within the reward window (``None`` before any resolved).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from policy_store import (
    PolicyConfig,
    PolicyKeys,
    PolicyState,
    RedisPolicyStore,
    Snapshot,
    UnknownPolicyError,
    build_snapshot,
    make_algorithm,
)
from policy_store.evaluation import json_safe
from producers import DEFAULT_FEATURE_NAMES
from stream_app import held_policies
from stream_app.aggregates import (
    Bucket,
    CohortArmStats,
    read_buckets,
    read_freshness,
    read_health,
)

from ._constraint import ConstraintView, constraint_view, describe_objective

COMPONENTS = ("quality", "cost", "latency")


@dataclass(frozen=True)
class ArmRow:
    """One arm's line of the report."""

    arm: str
    n: float
    mean_reward: float | None
    share: float | None
    rewarded: float
    quality: float | None
    cost: float | None
    latency: float | None
    error_rate: float | None
    theta: list[float]


@dataclass(frozen=True)
class CohortRow:
    """One cohort's line of the report (all arms together)."""

    cohort: str
    n: float
    mean_reward: float | None
    quality: float | None
    cost: float | None
    latency: float | None
    error_rate: float | None


@dataclass(frozen=True)
class Health:
    counters: dict[str, int]
    join_rate: float | None
    dlq_total: int
    dlq_by_reason: dict[str, int]
    last_apply_age_seconds: float | None
    apply_latency_ms: float | None
    consumer_lag_ms: float | None


@dataclass(frozen=True)
class PolicyReport:
    """Everything ``inspect`` prints, JSON-serialisable through ``to_dict``."""

    name: str
    version: int
    updated_at: float | None
    staleness_seconds: float | None
    config: dict[str, Any]
    window_minutes: int
    arms: list[ArmRow]
    cohorts: list[CohortRow]
    health: Health
    series: dict[str, Any] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    # what the learned policy's estimate θ·x picks per request kind (default features only)
    picks: list[dict[str, Any]] = field(default_factory=list)
    # "never" | "ok" | "idle" | "lagging", with a sentence: idle is not broken
    loop_state: dict[str, str] = field(default_factory=dict)
    # the DLQ topic's counts for this policy (``DeadLetters.for_policy``), or {"error": …}
    # when the topic could not be read; empty when it was not asked for
    dead_letters: dict[str, Any] = field(default_factory=dict)
    # what the policy optimises, in one line (``describe_objective``)
    objective: str = ""
    # a constrained objective's standing, None when weighted
    constraint: ConstraintView | None = None
    # why stream workers hold this policy's rewards (``held_policies``: Redis restored from
    # an older snapshot, a rebuild running), or None
    held: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def _sum_cells(cells: list[CohortArmStats]) -> CohortArmStats:
    total = CohortArmStats()
    for c in cells:
        for m in ("n", "reward", "quality", "cost", "latency", "errors"):
            setattr(total, m, getattr(total, m) + getattr(c, m))
    return total


def _means(s: CohortArmStats) -> dict[str, float | None]:
    return {
        "mean_reward": s.mean("reward"),
        "quality": s.mean("quality"),
        "cost": s.mean("cost"),
        "latency": s.mean("latency"),
        "error_rate": s.mean("errors"),
    }


def theta_by_arm(
    config: PolicyConfig, state: PolicyState, snap: Snapshot | None = None
) -> dict[str, list[float]]:
    """Per-arm θ the proxies select with (``build_snapshot``: the objective's estimate at
    the state's multiplier; the prior, zeros, for arms without data)."""
    if snap is None:
        snap = build_snapshot(make_algorithm(config.algorithm), config, state)
    return {arm: [float(v) for v in snap.theta[i]] for i, arm in enumerate(config.arms)}


# request kinds of the default feature vector (producers.default_features), typical sizes:
# a 500-character prompt and 500 max tokens
_KINDS = (
    ("code", {"has_code": 1.0}),
    ("speed (chat)", {"priority_speed": 1.0}),
    ("quality", {"priority_quality": 1.0}),
    ("cost", {"priority_cost": 1.0}),
    ("no priority", {}),
)


def feature_names(config: PolicyConfig) -> list[str]:
    """The default feature names when the policy uses the default vector's length, else x0…"""
    if config.n_features == len(DEFAULT_FEATURE_NAMES):
        return list(DEFAULT_FEATURE_NAMES)
    return [f"x{i}" for i in range(config.n_features)]


def picks_by_kind(config: PolicyConfig, thetas: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per request kind of the default features: each arm's estimated reward θ·x and the arm
    with the highest (what the learned policy serves, exploration aside). Empty for policies
    with their own feature function, whose kinds this cannot know."""
    names = feature_names(config)
    if names != list(DEFAULT_FEATURE_NAMES):
        return []
    out = []
    for kind, set_ in _KINDS:
        values = {"bias": 1.0, "prompt_k": 0.5, "max_tokens_k": 0.5, **set_}
        x = [values.get(n, 0.0) for n in names]
        scores = {a: sum(t * v for t, v in zip(thetas[a], x, strict=True)) for a in config.arms}
        out.append({"kind": kind, "features": x, "scores": scores,
                    "pick": max(scores, key=scores.__getitem__)})  # fmt: skip
    return out


def loop_state(health: Health, buckets: list[Bucket], max_staleness: float) -> dict[str, str]:
    """Whether the loop is working, idle (nothing to apply) or lagging behind the traffic.

    A last apply older than ``max_staleness`` is only a problem while rewards arrive: with
    no reward in the last two minutes the loop is idle; a consumer lag above the bound
    means the workers are behind.
    """
    age = health.last_apply_age_seconds
    recent = sum(c.n for b in buckets[-2:] for c in b.cells.values())
    if age is None:
        return {"state": "never", "detail": "no worker has applied a batch yet"}
    lag_s = (health.consumer_lag_ms or 0.0) / 1000.0
    if lag_s > max_staleness:
        return {"state": "lagging", "detail": f"workers are {lag_s:.0f} s behind the outcomes"}
    if age > max_staleness and not recent:
        return {"state": "idle", "detail": "no rewards in the last 2 minutes: nothing to apply"}
    return {"state": "ok", "detail": "workers apply rewards as they arrive"}


def health_from(counters: dict[str, int], freshness: dict[str, float], now: float) -> Health:
    """Derived loop-health figures from the ``health`` and ``freshness`` hashes."""
    joined = counters.get("joined", 0)
    expired = counters.get("expired", 0)
    resolved = joined + expired
    dlq = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("dlq:")}
    last_ms = freshness.get("last_apply_ms")
    return Health(
        counters=dict(sorted(counters.items())),
        join_rate=joined / resolved if resolved else None,
        dlq_total=sum(dlq.values()),
        dlq_by_reason=dict(sorted(dlq.items())),
        last_apply_age_seconds=max(0.0, now - last_ms / 1000.0) if last_ms else None,
        apply_latency_ms=freshness.get("last_apply_latency_ms"),
        consumer_lag_ms=freshness.get("last_lag_ms"),
    )


def series_from(buckets: list[Bucket], arms: tuple[str, ...]) -> dict[str, Any]:
    """Per-minute time series for the charts.

    ``minutes``: bucket start times (unix seconds); ``reward[cohort]`` mean reward
    per minute (None when the cohort had no rewards that minute); ``share[arm]``
    each arm's share of the minute's rewarded decisions, ``share_by_cohort[cohort][arm]``
    the same within one cohort (the learned cohort's choices apart from the baseline's);
    ``n`` rewarded decisions
    per minute; ``quality[cohort]`` / ``cost[cohort]`` / ``latency[cohort]`` means
    per minute over all arms of the cohort; ``dual`` the multiplier λ at the end of each
    minute a worker applied a batch (None in other minutes and for weighted policies).
    """
    cohorts = sorted({c for b in buckets for (c, _) in b.cells})
    all_arms = list(arms) + sorted({a for b in buckets for (_, a) in b.cells} - set(arms))
    out: dict[str, Any] = {
        "minutes": [b.minute * 60 for b in buckets],
        "dual": [b.dual for b in buckets],
        "n": [],
        "share_by_cohort": {c: {a: [] for a in all_arms} for c in cohorts},
        "reward": {c: [] for c in cohorts},
        "share": {a: [] for a in all_arms},
        **{m: {c: [] for c in cohorts} for m in COMPONENTS},
    }
    for b in buckets:
        total = _sum_cells(list(b.cells.values()))
        out["n"].append(total.n)
        for c in cohorts:
            s = _sum_cells([v for (cc, _), v in b.cells.items() if cc == c])
            out["reward"][c].append(s.mean("reward"))
            for m in COMPONENTS:
                out[m][c].append(s.mean(m))
        for a in all_arms:
            s = _sum_cells([v for (_, aa), v in b.cells.items() if aa == a])
            out["share"][a].append(s.n / total.n if total.n else None)
        for c in cohorts:
            n_c = sum(v.n for (cc, _), v in b.cells.items() if cc == c)
            for a in all_arms:
                cell = b.cells.get((c, a))
                n_ca = cell.n if cell is not None else 0.0
                out["share_by_cohort"][c][a].append(n_ca / n_c if n_c else None)
    return out


def build_policy_report(
    config: PolicyConfig,
    state: PolicyState,
    buckets: list[Bucket],
    counters: dict[str, int],
    freshness: dict[str, float],
    *,
    now: float,
    with_series: bool = False,
) -> PolicyReport:
    """Combine what was read from Redis into one report (pure)."""
    snap = build_snapshot(make_algorithm(config.algorithm), config, state)
    thetas = theta_by_arm(config, state, snap)
    cells = [(c, a, s) for b in buckets for (c, a), s in b.cells.items()]
    total_n = sum(s.n for _, _, s in cells)
    arms = []
    for arm in config.arms:
        agg = _sum_cells([s for _, a, s in cells if a == arm])
        st = state.arms.get(arm)
        arms.append(
            ArmRow(
                arm=arm,
                n=st.n if st is not None else 0.0,
                share=agg.n / total_n if total_n else None,
                rewarded=agg.n,
                theta=thetas[arm],
                **_means(agg),
            )
        )
    cohorts = []
    for cohort in sorted({c for c, _, _ in cells}):
        agg = _sum_cells([s for c, _, s in cells if c == cohort])
        cohorts.append(CohortRow(cohort=cohort, n=agg.n, **_means(agg)))
    health = health_from(counters, freshness, now)
    return PolicyReport(
        name=config.name,
        version=state.version,
        updated_at=state.updated_at,
        staleness_seconds=(
            max(0.0, now - state.updated_at) if state.updated_at is not None else None
        ),
        config=config.model_dump(mode="json"),
        window_minutes=len(buckets),
        arms=arms,
        cohorts=cohorts,
        health=health,
        series=series_from(buckets, config.arms) if with_series else {},
        feature_names=feature_names(config),
        picks=picks_by_kind(config, thetas),
        loop_state=loop_state(health, buckets, config.max_staleness_seconds),
        objective=describe_objective(config),
        constraint=constraint_view(config, state, snap=snap),
    )


def read_policy_report(
    store: RedisPolicyStore,
    name: str,
    *,
    window_minutes: int = 60,
    with_series: bool = False,
    now: float | None = None,
) -> PolicyReport:
    """Read one policy's config, state, aggregates and health from a ``RedisPolicyStore``.

    Redis errors surface as the store's errors (``StoreUnavailableError``, …), and an
    unknown policy as ``UnknownPolicyError``.
    """
    now = time.time() if now is None else now
    try:
        state = store.read_state(name)  # raises UnknownPolicyError first
    except UnknownPolicyError as exc:
        held = held_policies(store).get(name)
        if held is None:
            raise
        why = _held_line(held)
        raise UnknownPolicyError(f"policy {name!r} is not in Redis, but {why}") from exc
    config = store.get_config(name)
    # through the store, so Redis errors come back as the store's errors
    buckets, counters, freshness = store.run(
        _read_loop, store.client, store.keys(name), window_minutes, now
    )
    report = build_policy_report(
        config, state, buckets, counters, freshness, now=now, with_series=with_series
    )
    held = held_policies(store).get(name)
    return report if held is None else replace(report, held=_held_line(held))


def _held_line(held: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(held["since"]))
    return f"stream workers hold its rewards (uncommitted) since {since} UTC: {held['reason']}"


def _read_loop(
    client: Any, keys: PolicyKeys, window_minutes: int, now: float
) -> tuple[list[Bucket], dict[str, int], dict[str, float]]:
    """The aggregates buckets, health counters and freshness hash of one policy."""
    return (
        read_buckets(client, keys, window_minutes, now),
        read_health(client, keys),
        read_freshness(client, keys),
    )
