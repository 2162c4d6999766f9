"""Off-policy evaluation of a stored policy (and of a candidate config) on its logged rewards.

The target policy is what the proxy would do now: the policy's algorithm on a
snapshot of its current learned state. A candidate config re-uses the same state
(the statistics do not depend on the algorithm's hyperparameters) with its own
algorithm settings, so a user sees the expected effect of e.g. a different ε or α
before changing it. Both are evaluated on the same logs, and their DR difference
gets a paired interval.

By default only the learned cohort's rounds are used: their propensities come
from the policy's own randomisation (the ε floor gives every arm a non-zero
probability). Baseline rounds are usually deterministic (propensity 1 for the
baseline arm) and say nothing about other arms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy_store import PolicyConfig, PolicyState, make_algorithm, make_config
from policy_store.evaluation import (
    Interval,
    LoggedData,
    OPEResult,
    dr_difference,
    evaluate,
    json_safe,
    policy_probabilities,
    reward_model,
)


@dataclass(frozen=True)
class PolicyEvaluation:
    """OPE of the current policy and, optionally, a candidate config on the same logs."""

    policy: str
    version: int
    cohorts: tuple[str, ...]
    current: OPEResult
    candidate: OPEResult | None = None
    candidate_minus_current: Interval | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "version": self.version,
            "cohorts": list(self.cohorts),
            "current": json_safe(self.current.to_dict()),
            "skipped": dict(self.skipped),
        }
        if self.candidate is not None:
            out["candidate"] = json_safe(self.candidate.to_dict())
        if self.candidate_minus_current is not None:
            out["candidate_minus_current_dr"] = json_safe(self.candidate_minus_current.to_dict())
        return out

    def to_text(self) -> str:
        r = self.current
        pct = f"{r.dr.level:.0%}"
        lines = [
            f"Off-policy evaluation of policy {self.policy} (state version {self.version}) on "
            f"{r.n:,} logged rewards of cohort {'+'.join(self.cohorts)}",
            f"logged mean reward (what was served): {r.logged_value:.4f}",
            "",
            f"{'':<11}{'IPS':>24}{'SNIPS':>24}{'DR':>24}     ({pct} intervals)",
        ]
        rows = [("current", r)] + ([("candidate", self.candidate)] if self.candidate else [])
        for label, res in rows:
            lines.append(
                f"{label:<11}"
                + "".join(f"{_iv(getattr(res, k)):>24}" for k in ("ips", "snips", "dr"))
            )
        if self.candidate_minus_current is not None:
            d = self.candidate_minus_current
            lines.append(
                f"candidate − current (DR, paired): {d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
            )
        lines.append("")
        for label, res in rows:
            lines.append(
                f"{label}: effective sample size {res.ess:,.0f} of {res.n:,}, max weight "
                f"{res.max_weight:.1f}, mean weight {res.mean_weight:.2f}, "
                f"same arm as logged in {res.match_rate:.0%} of rounds"
            )
            if res.overlap_warning:
                lines.append(f"WARNING ({label}): {res.overlap_warning}")
            lines += [f"note ({label}): {n}" for n in res.notes]
        if self.skipped:
            lines.append(
                "skipped: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.skipped.items()) if v)
            )
        return "\n".join(lines)


def _iv(iv: Interval) -> str:
    return f"{iv.estimate:.4f} [{iv.low:.3f}, {iv.high:.3f}]"


def logged_data(
    rewards: Iterable[Any], config: PolicyConfig, cohorts: Sequence[str] = ("rl",)
) -> tuple[LoggedData, dict[str, int]]:
    """Logged rounds of ``config``'s policy from RewardEvents; counts what was skipped and why."""
    feats, served, rs, props = [], [], [], []
    skipped = {"other_cohorts": 0, "feature_length": 0, "other_policy": 0}
    for r in rewards:
        if r.policy != config.name:
            skipped["other_policy"] += 1
        elif r.cohort not in cohorts:
            skipped["other_cohorts"] += 1
        elif len(r.features) != config.n_features:
            skipped["feature_length"] += 1
        else:
            feats.append(r.features)
            served.append(r.arm)
            rs.append(r.reward)
            props.append(r.propensity)
    arms = list(config.arms) + sorted(set(served) - set(config.arms))
    data = LoggedData.from_records(
        np.asarray(feats, dtype=np.float64).reshape(len(served), config.n_features),
        served,
        rs,
        props,
        arms=arms,
    )
    return data, skipped


def candidate_config(current: PolicyConfig, changes: dict[str, Any]) -> PolicyConfig:
    """``current`` with the fields of ``changes`` (an ``algorithm`` section is merged, too)."""
    merged = current.model_dump()
    for k, v in changes.items():
        if k == "algorithm" and isinstance(v, dict):
            merged["algorithm"] = {**merged["algorithm"], **v}
        else:
            merged[k] = v
    cfg = make_config(merged)
    if cfg.n_features != current.n_features:
        raise ValueError(
            f"the candidate has n_features={cfg.n_features} but the logs have "
            f"{current.n_features}: off-policy evaluation needs the same features"
        )
    return cfg


def target_probabilities(
    config: PolicyConfig, state: PolicyState, data: LoggedData, seed: int = 0
) -> np.ndarray:
    """π(·|xᵢ) of ``config``'s algorithm on ``state`` for every logged context."""
    algo = make_algorithm(config.algorithm)
    snap = algo.snapshot(state, config.arms, config.n_features)
    return policy_probabilities(algo, snap, data.X, data.arms, rng=seed)


def evaluate_policy(
    rewards: Iterable[Any],
    config: PolicyConfig,
    state: PolicyState,
    *,
    candidate: PolicyConfig | None = None,
    cohorts: Sequence[str] = ("rl",),
    level: float = 0.95,
    folds: int = 2,
    seed: int = 0,
) -> PolicyEvaluation:
    """OPE of the current policy (and a candidate) from its RewardEvents."""
    data, skipped = logged_data(rewards, config, cohorts)
    if data.n == 0:
        raise ValueError(
            f"no logged rewards of policy {config.name!r} in cohort(s) {list(cohorts)}: "
            "nothing to evaluate yet (or widen --cohort)"
        )
    q = reward_model(data, folds=folds, rng=seed)  # one reward model for every target
    cur = target_probabilities(config, state, data, seed)
    current = evaluate(data, cur, level=level, q=q)
    cand_res = diff = None
    if candidate is not None:
        cand = target_probabilities(candidate, state, data, seed)
        cand_res = evaluate(data, cand, level=level, q=q)
        diff = dr_difference(data, cand, cur, q, level)
    return PolicyEvaluation(
        policy=config.name,
        version=state.version,
        cohorts=tuple(cohorts),
        current=current,
        candidate=cand_res,
        candidate_minus_current=diff,
        skipped=skipped,
    )
