"""Input validation for the stream app: raw bytes -> a usable event, or an ``EventError``.

Parsing (bad JSON, schema, non-finite numbers, size) is ``producers.parse_event``;
this module adds what needs the policy config: the policy exists, the arms are
its arms and the feature vector has its length. Every failure carries a DLQ
reason code; nothing here raises anything else on bad input.
"""

from __future__ import annotations

from collections.abc import Callable

from policy_store import PolicyConfig
from producers import (
    MAX_FEATURE_ABS,
    DecisionEvent,
    EventError,
    OutcomeEvent,
    RewardEvent,
    parse_event,
)

ConfigLookup = Callable[[str], PolicyConfig | None]


def _key_matches(key: bytes | str | None, decision_id: str) -> None:
    if key is None:
        return
    k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if k != decision_id:
        raise EventError(
            "schema",
            f"message key {k[:128]!r} is not the decision_id {decision_id!r}; "
            "key decisions and outcomes by decision_id so they meet on one partition",
        )


def _config(lookup: ConfigLookup, name: str) -> PolicyConfig:
    cfg = lookup(name)
    if cfg is None:
        raise EventError(
            "unknown_policy", f"no policy named {name!r}; create it with `rl-commons policy create`"
        )
    return cfg


def _check_arm(cfg: PolicyConfig, arm: str | None, what: str) -> None:
    if arm is not None and arm not in cfg.arms:
        raise EventError(
            "unknown_arm",
            f"{what} {arm!r} is not one of policy {cfg.name!r}'s arms {list(cfg.arms)}",
        )


def _check_features(cfg: PolicyConfig, features: tuple[float, ...]) -> None:
    if len(features) != cfg.n_features:
        raise EventError(
            "feature_length",
            f"{len(features)} features, policy {cfg.name!r} expects n_features={cfg.n_features}",
        )
    if features and max(abs(v) for v in features) > MAX_FEATURE_ABS:
        raise EventError(
            "out_of_range",
            f"a feature exceeds ±{MAX_FEATURE_ABS:g}; scale features before sending them",
        )


def validate_decision(
    raw: bytes, lookup: ConfigLookup, key: bytes | str | None = None
) -> tuple[DecisionEvent, PolicyConfig]:
    """A decision the join can use, with its policy's config."""
    ev: DecisionEvent = parse_event(raw, DecisionEvent)
    _key_matches(key, ev.decision_id)
    cfg = _config(lookup, ev.policy)
    for arm in ev.arms:
        _check_arm(cfg, arm, "offered arm")
    _check_arm(cfg, ev.learned_arm, "learned_arm")
    _check_features(cfg, ev.features)
    return ev, cfg


def validate_outcome(
    raw: bytes, lookup: ConfigLookup, key: bytes | str | None = None
) -> tuple[OutcomeEvent, PolicyConfig | None]:
    """An outcome part; its config when it names a policy (which must then exist)."""
    ev: OutcomeEvent = parse_event(raw, OutcomeEvent)
    _key_matches(key, ev.decision_id)
    if ev.policy is None:
        return ev, None
    cfg = _config(lookup, ev.policy)
    _check_arm(cfg, ev.arm, "arm")
    _check_arm(cfg, ev.fallback_arm, "fallback_arm")
    return ev, cfg


def validate_reward(raw: bytes, lookup: ConfigLookup) -> tuple[RewardEvent, PolicyConfig]:
    """A reward the updater can apply (re-checked: the config may have changed)."""
    ev: RewardEvent = parse_event(raw, RewardEvent)
    cfg = _config(lookup, ev.policy)
    _check_arm(cfg, ev.arm, "arm")
    _check_features(cfg, ev.features)
    return ev, cfg
