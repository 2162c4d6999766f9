"""The join of decisions and outcomes as pure functions: ``(state, event) -> Step``.

The engine keeps one entry per decision_id in a table per partition (changelogged,
``_batch_join``) and only moves data; everything that decides *what* happens lives
here and is unit-tested without Kafka. An entry is a JSON-able dict:

    {"status": "open", "d": {decision fields} | None, "o": {merged outcome} | None,
     "first": wall s first seen, "deadline": wall s when the window closes, "policy": name}

and, once closed, a small tombstone kept for ``retention`` seconds (default
``TOMBSTONE_SECONDS``) so that duplicates and late parts are recognised:

    {"status": "rewarded" | "expired" | "orphaned", "how": reward reason,
     "deadline": wall s when the tombstone is dropped, "policy": name,
     "arm": the arm the decision served (absent for orphans and older tombstones)}

Rules:
- Whichever side comes first opens the entry. The window (``RewardSpec.window_seconds``,
  per policy) starts when the entry is opened (processing wall-clock time). An
  outcome without ``policy`` that comes first waits ``default_window`` until its
  decision names the policy.
- Outcome parts merge field by field by the outcome rule of ``policy_store``
  (``merge_parts``, shared with the in-process selector). A part that repeats what is
  known is a duplicate; a part that contradicts a known value, or names an arm the
  decision did not serve, is a ``conflict`` (DLQ).
- A reward is emitted as soon as the decision is known and the outcome is final,
  failed, or has every component in ``spec.required``; when the window closes with a
  partial outcome the missing components take the spec's defaults (reason ``window``).
- A decision with no outcome at the window expires (reward only if the spec has
  ``reward_on_expiry``); an outcome with no decision is ``orphaned``.
- After the entry closed: a repeated decision or an outcome part after a final /
  complete reward is a duplicate; an outcome part after the window closed (or after
  expiry) and a decision after its outcome was orphaned are ``late`` (DLQ).
- A decision_id belongs to one policy and one served arm: a decision or an outcome that
  names another policy than the entry's, and a decision (or an outcome's arm) for another
  arm than the closed entry's, is a ``conflict`` (DLQ) and changes nothing, so the same
  id reused by two policies never mixes their outcomes.

Determinism and crashes: a tombstone keeps the reward it emitted (its JSON), and a
duplicate of a rewarded decision re-sends exactly that reward. A reward made when a
window closes is stamped with the window's deadline (``reward_ts``), not the sweep's
time, so a sweep repeated after a crash makes the same reward again; every copy of a
reward therefore carries the same ``reward_ts``, which the store's bounded dedupe of
re-sent copies relies on. The engine restores
the table from its changelog, which may be ahead of the committed input offsets; after
a crash the replayed input therefore meets the tombstone, and re-sending the stored
reward closes the window where the changelog write reached the broker but the
reward did not. The reward is keyed by its decision_id and the store's apply is
idempotent by decision_id, so a re-sent reward never counts twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_store import RewardSpec, merge_parts, outcome_part
from producers import DecisionEvent, OutcomeEvent, RewardEvent

from ._rewards import COMPONENTS, clipped_components, is_complete, make_reward

OPEN, REWARDED, EXPIRED, ORPHANED = "open", "rewarded", "expired", "orphaned"
DEFAULT_WINDOW = 600.0
TOMBSTONE_SECONDS = 300.0  # how long a closed entry is remembered (duplicates, late parts)

_DECISION_FIELDS = (
    "decision_id",
    "policy",
    "policy_version",
    "timestamp",
    "arm",
    "features",
    "propensity",
    "cohort",
    "learned_arm",
    "learned_propensity",
)

State = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """What one event or tick did: the new entry (None = delete it) and the outputs."""

    state: State | None
    changed: bool = False
    rewards: tuple[RewardEvent, ...] = ()
    dlq: tuple[tuple[str, str], ...] = ()  # (reason, detail)
    counters: Mapping[str, int] = field(default_factory=dict)
    policy: str | None = None  # whom the counters belong to


def decision_fields(decision: DecisionEvent) -> dict[str, Any]:
    """The part of a decision the join keeps (JSON-able)."""
    d = decision.model_dump(include=set(_DECISION_FIELDS))
    d["features"] = list(d["features"])
    return d


def _tombstone(
    status: str,
    how: str | None,
    policy: str | None,
    until: float,
    reward: RewardEvent | None = None,
    arm: str | None = None,
) -> State:
    tomb: State = {"status": status, "how": how, "deadline": until, "policy": policy}
    if reward is not None:
        tomb["reward"] = reward.to_bytes().decode()
    if arm is not None:
        tomb["arm"] = arm
    return tomb


def _resend(state: State) -> tuple[RewardEvent, ...]:
    raw = state.get("reward")
    return (RewardEvent.model_validate_json(raw),) if raw else ()


def _close_with_reward(
    state: State,
    spec: RewardSpec,
    reason: str,
    now: float,
    counters: Counter,
    retention: float,
    made_at: float | None = None,
) -> tuple[State, RewardEvent]:
    """The reward (stamped ``made_at``, default ``now``) and the tombstone that keeps it."""
    at = now if made_at is None else made_at
    reward = make_reward(spec, state["d"], state["o"], reason=reason, now=at)  # type: ignore[arg-type]
    counters["rewards"] += 1
    for c in reward.components.defaulted:
        counters[f"missing:{c}"] += 1
    for c in clipped_components(spec, state["o"]):
        counters[f"clipped:{c}"] += 1
    d = state["d"]
    tomb = _tombstone(REWARDED, reason, d["policy"], now + retention, reward, d["arm"])
    return tomb, reward


def _conflict(state: State, detail: str, counters: Mapping[str, int], policy: str | None) -> Step:
    return Step(state, dlq=(("conflict", detail),), counters=counters, policy=policy)


def _foreign(state: State, policy: str | None, arm: str | None) -> str | None:
    """Why an event for ``policy`` / ``arm`` cannot belong to this entry, or None."""
    owner = state.get("policy")
    if policy and owner and policy != owner:
        return f"the decision_id is already used by policy {owner!r}, not {policy!r}"
    served = state.get("arm")  # closed entries only: an open one compares its decision
    if arm is not None and served is not None and arm != served:
        return f"the decision_id was already rewarded for arm {served!r}, not {arm!r}"
    return None


def on_decision(
    state: State | None,
    decision: DecisionEvent,
    spec: RewardSpec,
    now: float,
    *,
    retention: float = TOMBSTONE_SECONDS,
) -> Step:
    """A (validated) decision arrived for this entry."""
    d = decision_fields(decision)
    policy = decision.policy
    if state is None:
        new = {
            "status": OPEN,
            "d": d,
            "o": None,
            "first": now,
            "deadline": now + spec.window_seconds,
            "policy": policy,
        }
        return Step(new, changed=True, counters={"events_in": 1}, policy=policy)
    foreign = _foreign(state, policy, decision.arm)
    if foreign:
        return _conflict(state, foreign, {"events_in": 1}, policy)
    status = state["status"]
    if status == ORPHANED:
        return Step(
            state,
            dlq=(("late", "decision arrived after its outcome's window closed"),),
            counters={"late": 1, "events_in": 1},
            policy=policy,
        )
    if status != OPEN or state.get("d") is not None:
        if status == OPEN and state["d"] != d:
            return Step(
                state,
                dlq=(("conflict", "a different decision with the same decision_id is pending"),),
                counters={"events_in": 1},
                policy=policy,
            )
        dup = {"duplicates": 1, "events_in": 1}
        return Step(state, rewards=_resend(state), counters=dup, policy=policy)
    # the outcome came first: complete the pair (and count its parts for this policy)
    counters: Counter = Counter(joined=1, events_in=1 + state.get("uncounted", 0))
    new = {**state, "d": d, "policy": policy, "deadline": state["first"] + spec.window_seconds}
    new.pop("uncounted", None)
    conflict = _arm_conflict(d, new["o"])
    if conflict:
        new["o"] = {k: v for k, v in new["o"].items() if k != "arm"}
        return Step(
            new, changed=True, dlq=(("conflict", conflict),), counters=counters, policy=policy
        )
    reason = is_complete(spec, new["o"])
    if reason is None:
        return Step(new, changed=True, counters=counters, policy=policy)
    tomb, reward = _close_with_reward(new, spec, reason, now, counters, retention)
    return Step(tomb, changed=True, rewards=(reward,), counters=counters, policy=policy)


def _arm_conflict(d: Mapping[str, Any] | None, o: Mapping[str, Any] | None) -> str | None:
    if d and o and o.get("arm") is not None and o["arm"] != d["arm"]:
        return f"outcome says arm {o['arm']!r} was called, the decision served {d['arm']!r}"
    return None


def outcome_spec(
    state: State | None,
    named: RewardSpec | None,
    spec_of: Callable[[str], RewardSpec | None],
) -> RewardSpec | None:
    """The reward spec an outcome part is judged by.

    The spec of the entry's policy (``spec_of(name)``) when the entry knows it, else
    ``named`` (the spec of the policy the outcome itself named, if any); the default
    spec when the entry has its decision but that policy was deleted meanwhile.
    """
    spec = named
    if state is not None and state.get("policy"):
        spec = spec_of(state["policy"]) or spec
    if state is not None and state.get("d") is not None and spec is None:
        spec = RewardSpec()
    return spec


def on_outcome(
    state: State | None,
    outcome: OutcomeEvent,
    spec: RewardSpec | None,
    now: float,
    default_window: float = DEFAULT_WINDOW,
    *,
    retention: float = TOMBSTONE_SECONDS,
) -> Step:
    """A (validated) outcome part arrived; ``spec`` is its policy's, if the outcome named one."""
    part = outcome_part(outcome)
    policy = outcome.policy if state is None else (state.get("policy") or outcome.policy)
    # an outcome that names no policy is counted once its decision tells whose it is
    seen = Counter(events_in=1) if policy else Counter()
    if state is None:
        window = spec.window_seconds if spec is not None else default_window
        new = {
            "status": OPEN,
            "d": None,
            "o": part,
            "first": now,
            "deadline": now + window,
            "policy": outcome.policy,
        }
        if not policy:
            new["uncounted"] = 1
        return Step(new, changed=True, counters=seen, policy=policy)
    foreign = _foreign(state, outcome.policy, outcome.arm)
    if foreign:
        return _conflict(state, foreign, seen, state.get("policy"))
    status = state["status"]
    if status == REWARDED and state.get("how") in ("final", "complete"):
        return Step(
            state, rewards=_resend(state), counters=seen + Counter(duplicates=1), policy=policy
        )
    if status != OPEN:
        why = {
            REWARDED: "its reward window had closed",
            EXPIRED: "its decision had expired",
            ORPHANED: "its window had closed without a decision",
        }[status]
        return Step(
            state,
            dlq=(("late", f"outcome arrived after {why}"),),
            counters=seen + Counter(late=1),
            policy=policy,
        )
    old = state.get("o") or {}
    d = state.get("d")
    merged, verdict, detail = merge_parts(old, part, d["arm"] if d else None)
    if verdict == "conflict":
        return Step(state, dlq=(("conflict", detail),), counters=seen, policy=policy)
    if verdict == "duplicate":
        return Step(state, counters=seen + Counter(duplicates=1), policy=policy)
    new = {**state, "o": merged}
    counters: Counter = seen
    if d is None:
        if not policy:
            new["uncounted"] = state.get("uncounted", 0) + 1
        return Step(new, changed=True, counters=counters, policy=policy)
    if not old:
        counters["joined"] += 1
    assert spec is not None, "an entry with a decision needs its policy's reward spec"
    reason = is_complete(spec, merged)
    if reason is None:
        return Step(new, changed=True, counters=counters, policy=policy)
    tomb, reward = _close_with_reward(new, spec, reason, now, counters, retention)
    return Step(tomb, changed=True, rewards=(reward,), counters=counters, policy=policy)


def on_tick(
    state: State,
    spec: RewardSpec | None,
    now: float,
    default_window: float = DEFAULT_WINDOW,
    *,
    retention: float = TOMBSTONE_SECONDS,
) -> Step:
    """The clock moved: close an open entry whose window passed, drop an old tombstone."""
    policy = state.get("policy")
    if now < state["deadline"]:
        return Step(state, policy=policy)
    if state["status"] != OPEN:
        return Step(None, changed=True, policy=policy)
    keep = retention
    counters: Counter = Counter()
    d, o = state.get("d"), state.get("o")
    if d is None:
        counters["orphaned"] += 1
        return Step(
            _tombstone(ORPHANED, None, policy, now + keep),
            changed=True,
            counters=counters,
            policy=policy,
        )
    spec = spec if spec is not None else RewardSpec()
    at = state["deadline"]  # the same stamp if a crash makes this sweep run again
    if o:
        tomb, reward = _close_with_reward(state, spec, "window", now, counters, retention, at)
        return Step(tomb, changed=True, rewards=(reward,), counters=counters, policy=policy)
    counters["expired"] += 1
    rewards: tuple[RewardEvent, ...] = ()
    if spec.reward_on_expiry is not None:
        rewards = (make_reward(spec, d, None, reason="expired", now=at),)
        counters["rewards"] += 1
        for c in COMPONENTS:
            counters[f"missing:{c}"] += 1
    return Step(
        _tombstone(
            EXPIRED, "expired", policy, now + keep, rewards[0] if rewards else None, d["arm"]
        ),
        changed=True,
        rewards=rewards,
        counters=counters,
        policy=policy,
    )
