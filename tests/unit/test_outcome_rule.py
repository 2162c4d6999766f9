"""One outcome rule for both modes: the stream join and the in-process selector learn the same.

The same sequences of outcome parts go through the join's pure steps
(``on_decision`` then ``on_outcome`` per part) and through an in-process
``ProviderSelector`` (``report_outcome`` per part); both must accept and refuse the
same parts and learn the same reward (or nothing) for the decision.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import RewardSpec, is_complete, merge_parts
from producers import DecisionEvent, OutcomeEvent, ProviderSelector
from stream_app._join import on_decision, on_outcome

SPEC = RewardSpec(required=("quality", "latency"), failure_reward=-0.5, window_seconds=60.0)
ARMS = ("a", "b")
X = (1.0, 0.5)


def _event_fields(part: dict) -> dict:
    """report_outcome's keywords as OutcomeEvent fields."""
    names = {"provider": "arm", "fallback_provider": "fallback_arm"}
    return {names.get(k, k): v for k, v in part.items()}


def _through_the_join(served: str, parts: list[dict]) -> tuple[list[bool], float | None]:
    """(accepted per part, the reward emitted or None), until the first reward."""
    decision = DecisionEvent(
        decision_id="d1",
        policy="p",
        policy_version=0,
        timestamp=1.0,
        arms=ARMS,
        arm=served,
        propensity=0.5,
        features=X,
    )
    state = on_decision(None, decision, SPEC, now=0.0).state
    accepted = []
    for i, part in enumerate(parts):
        event = OutcomeEvent(decision_id="d1", timestamp=2.0 + i, **_event_fields(part))
        step = on_outcome(state, event, SPEC, now=1.0 + i)
        accepted.append(not any(reason == "conflict" for reason, _ in step.dlq))
        state = step.state
        if step.rewards:
            return accepted, step.rewards[0].reward
    return accepted, None


def _in_process(parts: list[dict], seed: int) -> tuple[str, list[bool], float | None, dict]:
    """(served arm, accepted per part, the reward learnt or None, metrics), until learnt."""
    sel = ProviderSelector(
        providers=list(ARMS),
        feature_fn=lambda r: X,
        n_features=2,
        reward_spec=SPEC,
        policy="p",
        seed=seed,
    )
    d = sel.select({})
    accepted = []
    for part in parts:
        accepted.append(sel.report_outcome(d.decision_id, **part))
        state = sel.reader.store.read_state("p")
        if state.arms:
            stats = state.arms[d.provider]
            assert stats.n == 1.0 and set(state.arms) == {d.provider}
            np.testing.assert_array_equal(stats.xx, np.outer(X, X))
            reward = float(stats.b[0] / X[0])
            np.testing.assert_allclose(stats.b, reward * np.array(X))
            return d.provider, accepted, reward, sel.metrics()
    return d.provider, accepted, None, sel.metrics()


OTHER = "OTHER"  # placeholder: the arm the decision did not serve

SEQUENCES = {
    "parts until complete": [dict(cost=0.1, latency=0.2), dict(quality=0.9)],
    "conflicting cost refused": [dict(cost=0.1), dict(cost=0.2), dict(quality=0.9, latency=0.3)],
    "duplicate then final": [dict(cost=0.1), dict(cost=0.1), dict(quality=1.0, final=True)],
    "error charges the failure reward": [
        dict(error="Timeout", fallback_provider=OTHER, final=True)
    ],
    "error after a part": [dict(quality=0.8), dict(error="Timeout")],
    "another arm is a conflict": [dict(provider=OTHER, quality=0.9), dict(quality=0.8)],
    "served arm named": [dict(provider="SERVED", quality=0.9), dict(latency=0.1)],
    "final with defaults": [dict(latency=0.3, final=True)],
    "conflicting error refused": [dict(error="A"), dict(error="B")],
    "never complete": [dict(cost=0.4), dict(quality=0.2)],
}


def _resolve(parts: list[dict], served: str) -> list[dict]:
    other = next(a for a in ARMS if a != served)
    swap = {OTHER: other, "SERVED": served}
    return [{k: swap.get(v, v) if isinstance(v, str) else v for k, v in p.items()} for p in parts]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_join_and_in_process_selector_learn_the_same(name, seed):
    # the served arm is the selector's choice; the join gets a decision that served it
    served, _, _, _ = _in_process([], seed)
    parts = _resolve(SEQUENCES[name], served)
    served_again, accepted, learnt, metrics = _in_process(parts, seed)
    assert served_again == served
    join_accepted, join_reward = _through_the_join(served, parts)
    assert accepted == join_accepted
    if join_reward is None:
        assert learnt is None
    else:
        assert learnt == pytest.approx(join_reward, abs=1e-12)
    assert metrics["outcome_conflicts"] == join_accepted.count(False)


values = st.sampled_from([0.1, 0.7])
part_strategy = st.fixed_dictionaries(
    {},
    optional={
        "quality": values,
        "cost": values,
        "latency": values,
        "error": st.sampled_from(["Timeout", "RateLimit"]),
        "provider": st.sampled_from(["SERVED", OTHER]),
        "final": st.just(True),
    },
)


@settings(max_examples=80, deadline=None)
@given(st.lists(part_strategy, min_size=1, max_size=5), st.integers(0, 3))
def test_any_part_sequence_learns_the_same_in_both_modes(raw_parts, seed):
    served, _, _, _ = _in_process([], seed)
    parts = _resolve(raw_parts, served)
    _, accepted, learnt, _ = _in_process(parts, seed)
    join_accepted, join_reward = _through_the_join(served, parts)
    assert accepted == join_accepted
    assert (learnt is None) == (join_reward is None)
    if join_reward is not None:
        assert learnt == pytest.approx(join_reward, abs=1e-12)


def test_merge_verdicts_and_completeness():
    m = merge_parts(None, {"cost": 0.1, "timestamp": 1.0})
    assert m.verdict == "new" and m.outcome == {"cost": 0.1, "timestamp": 1.0}
    assert merge_parts(m.outcome, {"cost": 0.1, "timestamp": 5.0}).verdict == "duplicate"
    conflict = merge_parts(m.outcome, {"cost": 0.3, "quality": 1.0})
    assert conflict.verdict == "conflict" and conflict.outcome == m.outcome
    assert "cost=0.3" in conflict.detail
    wrong_arm = merge_parts(m.outcome, {"arm": "b"}, served="a")
    assert wrong_arm.verdict == "conflict" and "'b'" in wrong_arm.detail
    later = merge_parts(m.outcome, {"quality": 0.5, "timestamp": 3.0}, served="a")
    assert later.outcome["timestamp"] == 3.0 and later.verdict == "new"
    assert is_complete(SPEC, later.outcome) is None
    assert is_complete(SPEC, {**later.outcome, "latency": 0.2}) == "complete"
    assert is_complete(SPEC, {"error": "x"}) == "final"
