"""The join of decisions and outcomes as pure functions (no Faust, no services)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import RewardSpec
from producers import DecisionEvent, OutcomeEvent
from stream_app._join import (
    EXPIRED,
    OPEN,
    ORPHANED,
    REWARDED,
    TOMBSTONE_SECONDS,
    on_decision,
    on_outcome,
    on_tick,
)

SPEC = RewardSpec(window_seconds=10.0)


def decision(i: str = "d1", **kw) -> DecisionEvent:
    fields = dict(
        decision_id=i,
        policy="p",
        policy_version=1,
        timestamp=1.0,
        arms=("a", "b"),
        arm="a",
        propensity=0.5,
        features=(1.0, 2.0),
    )
    return DecisionEvent(**{**fields, **kw})


def outcome(i: str = "d1", **kw) -> OutcomeEvent:
    return OutcomeEvent(**{"decision_id": i, "timestamp": 2.0, **kw})


FULL = dict(quality=1.0, cost=0.0, latency=0.0)


def work(step) -> dict[str, int]:
    """A step's counters except ``events_in`` (tested on its own)."""
    return {k: v for k, v in step.counters.items() if k != "events_in" and v}


def test_decision_then_complete_outcome_rewards_once():
    s1 = on_decision(None, decision(), SPEC, now=0.0)
    assert s1.state["status"] == OPEN and not s1.rewards and s1.changed
    s2 = on_outcome(s1.state, outcome(**FULL), SPEC, now=1.0)
    assert [r.decision_id for r in s2.rewards] == ["d1"]
    assert s2.rewards[0].reward == pytest.approx(1.0)
    assert s2.rewards[0].reason == "complete"
    assert work(s2) == {"joined": 1, "rewards": 1}
    assert s2.state["status"] == REWARDED
    # tombstone: repeats are duplicates, not new rewards
    s3 = on_outcome(s2.state, outcome(**FULL), SPEC, now=2.0)
    s4 = on_decision(s2.state, decision(), SPEC, now=2.0)
    for s in (s3, s4):
        # the stored reward is re-sent unchanged (the store dedupes it by decision_id)
        assert s.rewards == s2.rewards and not s.changed and work(s) == {"duplicates": 1}


def test_outcome_before_decision():
    s1 = on_outcome(None, outcome(**FULL), None, now=0.0)
    assert s1.state["d"] is None and not s1.rewards
    s2 = on_decision(s1.state, decision(), SPEC, now=1.0)
    assert len(s2.rewards) == 1 and s2.counters["joined"] == 1
    assert s2.rewards[0].outcome_ts == 2.0 and s2.rewards[0].decision_ts == 1.0


def test_partial_outcomes_merge_until_complete():
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(cost=0.5, latency=0.5), SPEC, now=1.0)
    assert not s.rewards and work(s) == {"joined": 1}
    s = on_outcome(s.state, outcome(cost=0.5), SPEC, now=1.5)  # repeat of a part
    assert work(s) == {"duplicates": 1} and not s.changed
    s = on_outcome(s.state, outcome(quality=1.0, timestamp=5.0), SPEC, now=2.0)
    (r,) = s.rewards
    assert r.reward == pytest.approx(0.5 + 0.3 * 0.5 + 0.2 * 0.5)
    assert r.outcome_ts == 5.0 and r.components.defaulted == ()


def test_final_flag_closes_with_defaults():
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(cost=0.0, final=True), SPEC, now=1.0)
    (r,) = s.rewards
    assert r.reason == "final" and r.components.defaulted == ("quality", "latency")
    assert s.counters["missing:quality"] == 1 and s.counters["missing:latency"] == 1


def test_values_in_the_wrong_units_are_counted_as_clipped_never_silently():
    # dollars and milliseconds without caps: latency 850 is clipped to the worst (1.0)
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(quality=0.9, cost=0.004, latency=850.0), SPEC, now=1.0)
    (r,) = s.rewards
    assert r.components.latency == 1.0
    assert s.counters["clipped:latency"] == 1 and not s.counters["clipped:cost"]
    # with the policy's caps the same outcome is in range: nothing counted
    capped = RewardSpec(window_seconds=10.0, cost_cap=0.01, latency_cap_ms=10_000)
    s = on_decision(None, decision("d2"), capped, now=0.0)
    s = on_outcome(s.state, outcome("d2", quality=0.9, cost=0.004, latency=850.0), capped, now=1.0)
    assert s.rewards and not any(k.startswith("clipped:") for k in s.counters)


def test_conflicting_part_goes_to_dlq_and_changes_nothing():
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(cost=0.1), SPEC, now=1.0)
    c = on_outcome(s.state, outcome(cost=0.9), SPEC, now=1.0)
    assert c.dlq and c.dlq[0][0] == "conflict" and c.state == s.state and not c.changed
    c = on_outcome(s.state, outcome(arm="b"), SPEC, now=1.0)
    assert c.dlq[0][0] == "conflict"


def test_window_closes_partial_outcome_with_defaults():
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(quality=1.0), SPEC, now=1.0)
    assert on_tick(s.state, SPEC, now=9.9).state == s.state
    t = on_tick(s.state, SPEC, now=10.0)
    (r,) = t.rewards
    assert r.reason == "window" and set(r.components.defaulted) == {"cost", "latency"}
    assert t.state["status"] == REWARDED
    late = on_outcome(t.state, outcome(cost=0.1), SPEC, now=11.0)
    assert late.dlq[0][0] == "late" and work(late) == {"late": 1}
    # the tombstone is dropped after the retention
    assert on_tick(t.state, SPEC, now=10.0 + TOMBSTONE_SECONDS - 0.1).state == t.state
    gone = on_tick(t.state, SPEC, now=10.0 + TOMBSTONE_SECONDS)
    assert gone.state is None and gone.changed


def test_unmatched_decision_expires_without_reward_by_default():
    s = on_decision(None, decision(), SPEC, now=0.0)
    t = on_tick(s.state, SPEC, now=10.0)
    assert not t.rewards and work(t) == {"expired": 1} and t.state["status"] == EXPIRED
    late = on_outcome(t.state, outcome(**FULL), SPEC, now=11.0)
    assert late.dlq[0][0] == "late" and not late.rewards


def test_expiry_reward_when_configured():
    spec = RewardSpec(window_seconds=5.0, reward_on_expiry=0.25)
    s = on_decision(None, decision(), spec, now=0.0)
    t = on_tick(s.state, spec, now=5.0)
    (r,) = t.rewards
    assert r.reason == "expired" and r.reward == 0.25
    assert t.counters["expired"] == 1 and t.counters["rewards"] == 1


def test_orphaned_outcome_then_late_decision():
    s = on_outcome(None, outcome(**FULL), None, now=0.0, default_window=3.0)
    t = on_tick(s.state, None, now=3.0, default_window=3.0)
    assert work(t) == {"orphaned": 1} and t.state["status"] == ORPHANED
    late = on_decision(t.state, decision(), SPEC, now=4.0)
    assert late.dlq[0][0] == "late" and not late.rewards


def test_outcome_first_uses_its_policy_window():
    s = on_outcome(None, outcome(policy="p", cost=0.1), SPEC, now=0.0, default_window=600)
    assert s.state["deadline"] == 10.0


def test_events_in_are_counted_for_their_policy_once_it_is_known():
    s1 = on_outcome(None, outcome(cost=0.1), None, now=0.0)  # names no policy
    assert s1.policy is None and not s1.counters.get("events_in")
    s2 = on_outcome(s1.state, outcome(latency=0.1), None, now=0.1)
    assert not s2.counters.get("events_in")
    s3 = on_decision(s2.state, decision(), SPEC, now=0.2)
    assert s3.policy == "p" and s3.counters["events_in"] == 3  # two parts + the decision
    s4 = on_outcome(s3.state, outcome(quality=0.2), SPEC, now=0.3)
    assert s4.counters["events_in"] == 1 and s4.rewards
    named = on_outcome(None, outcome(policy="p", cost=0.1), SPEC, now=0.0)
    assert named.counters["events_in"] == 1


def test_state_is_json_serialisable():
    s = on_decision(None, decision(), SPEC, now=0.0)
    s = on_outcome(s.state, outcome(quality=0.5), SPEC, now=1.0)
    assert json.loads(json.dumps(s.state)) == s.state


events = st.lists(
    st.one_of(
        st.just(("d",)),
        st.tuples(st.just("o"), st.sampled_from(["quality", "cost", "latency"])),
        st.tuples(st.just("t"), st.floats(0, 30)),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_at_most_one_reward_per_decision_in_any_order(seq):
    """Whatever the order, repeats and ticks: one reward at most while the entry (or its
    tombstone) lives, and only once the decision is known. After the tombstone is dropped
    a replay is a new entry; the store's dedupe by decision_id covers that case."""
    state, now, rewards, seen_decision = None, 0.0, 0, False
    for ev in seq:
        if ev[0] == "d":
            step = on_decision(state, decision(), SPEC, now)
            seen_decision = True
        elif ev[0] == "o":
            step = on_outcome(state, outcome(**{ev[1]: 0.5}), SPEC, now)
        else:
            if state is None:
                continue
            now += ev[1]
            step = on_tick(state, SPEC, now)
        if step.counters.get("duplicates"):
            continue  # a re-send of the stored reward, same bytes
        rewards += len(step.rewards)
        if step.rewards:
            assert seen_decision
        state = step.state
        assert rewards <= 1
        if state is None:
            rewards, seen_decision = 0, False


def _feed(events, spec=SPEC):
    """Run ``events`` (decisions and outcomes) through one entry; the steps."""
    state, steps = None, []
    for t, ev in enumerate(events):
        if isinstance(ev, DecisionEvent):
            step = on_decision(state, ev, spec, now=float(t))
        else:
            step = on_outcome(state, ev, spec, now=float(t))
        state = step.state
        steps.append(step)
    return steps


@pytest.mark.parametrize("order", ["d1 d2 o2 o1", "d1 o2 o1 d2", "o2 d1 d2 o1"])
def test_one_decision_id_used_by_two_policies_never_mixes_their_outcomes(order):
    """P1 and P2 both use id "x": whichever policy names the id first owns it; the other's
    events are conflicts (DLQ), and nobody learns the other's outcome."""
    events = {
        "d1": decision("x", policy="p1"),
        "d2": decision("x", policy="p2"),
        "o1": outcome("x", policy="p1", quality=0.9, cost=0.0, latency=0.0, final=True),
        "o2": outcome("x", policy="p2", quality=0.0, cost=0.0, latency=0.0, final=True),
    }
    names = order.split()
    steps = _feed([events[n] for n in names])
    rewards = [r for s in steps for r in s.rewards]
    owner = events[names[0]].policy
    assert {r.policy for r in rewards} <= {owner}
    assert len(rewards) == 1
    assert rewards[0].components.quality == pytest.approx(0.9 if owner == "p1" else 0.0)
    conflicts = [n for n, s in zip(names, steps, strict=True) if s.dlq]
    assert all(s.dlq[0][0] == "conflict" for s in steps if s.dlq)
    assert sorted(conflicts) == sorted(n for n in names if events[n].policy != owner)


def test_an_id_reused_for_another_arm_after_its_reward_is_a_conflict_not_a_duplicate():
    steps = _feed([decision(), outcome(**FULL, final=True), decision(arm="b")])
    assert steps[1].rewards and not steps[2].rewards
    assert steps[2].dlq and steps[2].dlq[0][0] == "conflict" and "arm" in steps[2].dlq[0][1]
    again = _feed([decision(), outcome(**FULL, final=True), decision()])
    assert again[2].rewards == again[1].rewards and not again[2].dlq  # a true duplicate
    late = _feed([decision(), outcome(**FULL, final=True), outcome(arm="b", quality=0.1)])
    assert late[2].dlq[0][0] == "conflict" and not late[2].rewards


def test_a_window_reward_is_stamped_with_the_deadline_so_a_repeated_sweep_makes_it_again():
    s1 = on_decision(None, decision(), SPEC, now=0.0)
    s2 = on_outcome(s1.state, outcome(cost=0.1), SPEC, now=1.0)
    first = on_tick(s2.state, SPEC, now=s2.state["deadline"] + 0.7)
    after_crash = on_tick(s2.state, SPEC, now=s2.state["deadline"] + 95.0)
    assert first.rewards[0].reward_ts == s2.state["deadline"]
    assert after_crash.rewards == first.rewards
