"""Input validation for the stream app: raw bytes -> a usable event, or an ``EventError``.

Parsing (bad JSON, schema, non-finite numbers, size) is ``producers.parse_event``;
this module adds what needs the policy config: the policy exists, the arms are
its arms and the feature vector has its length; and, given the worker's clock
``now``, that every timestamp is within a sane range of it (at most
``MAX_AGE_SECONDS`` old, at most ``MAX_AHEAD_SECONDS`` ahead: an outcome at
-1e300 would otherwise reach the lag figures). Every failure carries a DLQ
reason code; nothing here raises anything else on bad input.

An unknown arm is checked again against a freshly read config before it is refused
when the lookup can reload (a ``reload(name)`` method, as ``ConfigCache`` has): an arm
added to a live policy is then known from its first event on.
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

#: the oldest timestamp accepted, in seconds before the worker's clock (a backlog can be
#: as old as the topics' retention; a year leaves room)
MAX_AGE_SECONDS = 366 * 86400.0
#: the furthest ahead of the worker's clock a timestamp may be (clock skew)
MAX_AHEAD_SECONDS = 3600.0


def _check_times(now: float | None, **stamps: float | None) -> None:
    """Refuse a timestamp outside [now - MAX_AGE_SECONDS, now + MAX_AHEAD_SECONDS]."""
    if now is None:
        return
    for name, ts in stamps.items():
        if ts is None:
            continue
        if ts < now - MAX_AGE_SECONDS or ts > now + MAX_AHEAD_SECONDS:
            shown = f"{ts:.6g}" if abs(ts) < 1e15 else f"{ts:.3g}"
            raise EventError(
                "out_of_range",
                f"{name} {shown} is outside the sane range of the worker's clock "
                f"({now:.0f} - {MAX_AGE_SECONDS:.0f} s .. + {MAX_AHEAD_SECONDS:.0f} s); "
                "send unix seconds from a synchronised clock",
            )


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


def _check_arms(
    cfg: PolicyConfig, lookup: ConfigLookup, named: tuple[tuple[str | None, str], ...]
) -> PolicyConfig:
    """The config under which every ``(arm, what)`` of ``named`` is one of the policy's
    arms: ``cfg``, or the config read again (``lookup.reload``) when one was unknown."""
    for arm, what in named:
        if arm is None or arm in cfg.arms:
            continue
        reload = getattr(lookup, "reload", None)
        fresh = reload(cfg.name) if reload is not None else None
        if fresh is not None and fresh is not cfg:
            return _check_arms(fresh, lambda _name: None, named)
        raise EventError(
            "unknown_arm",
            f"{what} {arm!r} is not one of policy {cfg.name!r}'s arms {list(cfg.arms)}",
        )
    return cfg


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
    raw: bytes, lookup: ConfigLookup, key: bytes | str | None = None, now: float | None = None
) -> tuple[DecisionEvent, PolicyConfig]:
    """A decision the join can use, with its policy's config (``now``: the worker's clock,
    for the timestamp's range; None skips that check)."""
    ev: DecisionEvent = parse_event(raw, DecisionEvent)
    _key_matches(key, ev.decision_id)
    _check_times(now, timestamp=ev.timestamp)
    cfg = _config(lookup, ev.policy)
    named = tuple((arm, "offered arm") for arm in ev.arms) + ((ev.learned_arm, "learned_arm"),)
    cfg = _check_arms(cfg, lookup, named)
    _check_features(cfg, ev.features)
    return ev, cfg


def validate_outcome(
    raw: bytes, lookup: ConfigLookup, key: bytes | str | None = None, now: float | None = None
) -> tuple[OutcomeEvent, PolicyConfig | None]:
    """An outcome part; its config when it names a policy (which must then exist)."""
    ev: OutcomeEvent = parse_event(raw, OutcomeEvent)
    _key_matches(key, ev.decision_id)
    _check_times(now, timestamp=ev.timestamp)
    if ev.policy is None:
        return ev, None
    cfg = _config(lookup, ev.policy)
    cfg = _check_arms(cfg, lookup, ((ev.arm, "arm"), (ev.fallback_arm, "fallback_arm")))
    return ev, cfg


def validate_reward(
    raw: bytes, lookup: ConfigLookup, now: float | None = None
) -> tuple[RewardEvent, PolicyConfig]:
    """A reward the updater can apply (re-checked: the config may have changed)."""
    ev: RewardEvent = parse_event(raw, RewardEvent)
    _check_times(now, decision_ts=ev.decision_ts, outcome_ts=ev.outcome_ts, reward_ts=ev.reward_ts)
    cfg = _config(lookup, ev.policy)
    cfg = _check_arms(cfg, lookup, ((ev.arm, "arm"),))
    _check_features(cfg, ev.features)
    return ev, cfg
