"""Hostile input: whatever arrives on a topic, parsing ends in an event or an ``EventError``.

Hypothesis throws malformed and adversarial messages at ``producers.parse_event``:
random bytes, arbitrary JSON (NaN / infinity, odd unicode, wrong types), valid
events with one field replaced by garbage, huge payloads, deep nesting and
10,000 features. The parser must never raise anything but ``EventError``, whose
``reason`` is one of the DLQ reason codes; anything it accepts is finite and
re-serialises to a bounded message.
"""

from __future__ import annotations

import json
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import DecisionEvent, DLQRecord, EventError, OutcomeEvent, parse_event
from producers._events import EVENT_MODELS, MAX_EVENT_BYTES, MAX_FEATURES, DLQReason

REASONS = set(typing.get_args(DLQReason))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_DECISION = {
    "type": "decision",
    "decision_id": "d-1",
    "policy": "provider_selection",
    "policy_version": 3,
    "timestamp": 1_700_000_000.5,
    "arms": ["gpt-4", "claude-3", "llama"],
    "arm": "claude-3",
    "propensity": 0.8,
    "features": [0.1, -2.0, 3.5, 0.0],
    "cohort": "rl",
}
VALID_OUTCOME = {
    "type": "outcome",
    "decision_id": "d-1",
    "timestamp": 1_700_000_001.0,
    "arm": "claude-3",
    "quality": 0.9,
    "cost": 0.2,
    "latency": 0.4,
    "final": True,
}

odd_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),  # surrogates, controls, RTL, NUL…
    max_size=40,
)
odd_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    odd_floats,
    odd_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(odd_text, inner, max_size=5)
    ),
    max_leaves=25,
)


def _dumps(obj: object) -> bytes:
    """JSON as a hostile producer would write it: NaN/Infinity literals, lone surrogates."""
    return json.dumps(obj, allow_nan=True, ensure_ascii=True).encode()


def _outcome_of_parse(raw: bytes) -> object:
    """Parse and check the contract; returns the event or the EventError."""
    try:
        event = parse_event(raw)
    except EventError as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail, "an EventError must say what was wrong"
        return exc
    assert isinstance(event, EVENT_MODELS)
    _assert_finite(event.model_dump())
    out = event.to_bytes()
    assert len(out) <= MAX_EVENT_BYTES
    assert parse_event(out) == event  # accepted events round-trip unchanged
    return event


def _assert_finite(obj: object) -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
    elif isinstance(obj, dict):
        for v in obj.values():
            _assert_finite(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _assert_finite(v)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_parser(raw):
    _outcome_of_parse(raw)


@FUZZ
@given(json_values)
def test_arbitrary_json_never_crashes_the_parser(value):
    result = _outcome_of_parse(_dumps(value))
    if not isinstance(value, dict):
        assert isinstance(result, EventError)
        assert result.reason == "schema"


@FUZZ
@given(
    base=st.sampled_from([VALID_DECISION, VALID_OUTCOME]),
    data=st.data(),
)
def test_one_field_replaced_by_garbage(base, data):
    """A valid event with one field (or a new one) set to an arbitrary JSON value."""
    field = data.draw(st.one_of(st.sampled_from(sorted(base)), odd_text), label="field")
    value = data.draw(json_values, label="value")
    event = {**base, field: value}
    result = _outcome_of_parse(_dumps(event))
    if field not in base:
        assert isinstance(result, EventError), "unknown fields are refused (extra=forbid)"


@FUZZ
@given(
    field=st.sampled_from(["timestamp", "propensity", "policy_version", "features"]),
    bad=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]),
)
def test_non_finite_numbers_are_named(field, bad):
    text = json.dumps({k: v for k, v in VALID_DECISION.items() if k != field})
    literal = f"[1.0, {bad}]" if field == "features" else bad
    raw = (text[:-1] + f', "{field}": {literal}}}').encode()
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason == "non_finite"


@FUZZ
@given(
    quality=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
)
def test_non_finite_outcome_component_is_refused(quality):
    raw = _dumps({**VALID_OUTCOME, "quality": quality})
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason == "non_finite"


def test_ten_thousand_features_are_refused_with_the_field_named():
    raw = _dumps({**VALID_DECISION, "features": [0.5] * 10_000})
    assert len(raw) < MAX_EVENT_BYTES  # refused for its length, not its size
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason == "schema"
    assert "features" in info.value.detail


def test_the_feature_limit_itself_is_accepted():
    event = parse_event(_dumps({**VALID_DECISION, "features": [0.25] * MAX_FEATURES}))
    assert len(event.features) == MAX_FEATURES
    assert len(event.to_bytes()) <= MAX_EVENT_BYTES


@settings(max_examples=20, deadline=None)
@given(extra=st.integers(min_value=1, max_value=4 * MAX_EVENT_BYTES))
def test_huge_payloads_are_refused_before_parsing(extra):
    padding = "x" * (MAX_EVENT_BYTES + extra)
    raw = _dumps({**VALID_OUTCOME, "error": padding})
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason == "too_large"
    assert str(MAX_EVENT_BYTES) in info.value.detail


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(min_value=1, max_value=200_000),
    opener=st.sampled_from(["[", '{"a":']),
    where=st.sampled_from(["top", "quality", "features", "extra"]),
)
def test_deep_nesting_is_an_event_error(depth, opener, where):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    if where == "top":
        text = nested
    else:
        base = json.dumps(VALID_OUTCOME if where == "quality" else VALID_DECISION)
        text = base[:-1] + f', "{where}": {nested}}}'
    raw = text.encode()
    with pytest.raises(EventError) as info:
        parse_event(raw)
    if len(raw) > MAX_EVENT_BYTES:
        assert info.value.reason == "too_large"
    else:
        assert info.value.reason in {"bad_json", "schema"}


@FUZZ
@given(ident=odd_text.filter(lambda s: s.strip() != ""))
def test_odd_unicode_in_identifiers(ident):
    """Ids and names are restricted to a safe alphabet; anything else is a schema error."""
    for field in ("decision_id", "policy", "arm"):
        event = {**VALID_DECISION, field: ident}
        if field == "arm":
            event["arms"] = [ident, "gpt-4"]
        result = _outcome_of_parse(_dumps(event))
        if isinstance(result, DecisionEvent):
            assert getattr(result, field) == ident
            assert ident.isascii() and ident.isprintable()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00",  # not UTF-8
        b'{"type": "outcome", "decision_id": "\\ud800", "timestamp": 1}',  # lone surrogate
        b'{"type": "outcome", "decision_id": "d", "timestamp": 1' + b"0" * 5000 + b"}",  # huge int
        b'{"type": "decision", "decision_id": "d", "policy": "p", "policy_version": 0,'
        b' "timestamp": 1, "arms": ["a"], "arm": "b", "propensity": 1, "features": []}',
        b'{"type": "decision", "decision_id": "d", "policy": "p", "policy_version": 0,'
        b' "timestamp": 1, "arms": ["a"], "arm": "a", "propensity": 0, "features": []}',
        b'{"type": "pickle", "payload": "gASVAAAAAAAAAAB9lC4="}',
        b'{"type": "outcome", "decision_id": "d", "timestamp": "soon"}',
        b'{"type": "outcome", "decision_id": ["d"], "timestamp": 1}',
        b'{"type": "outcome", "decision_id": "d", "timestamp": true, "quality": 2}',
        b'{"type": "outcome", "decision_id": "d", "timestamp": 1, "__class__": "os.system"}',
        b"",
        b"   ",
        b"null",
        b"[]",
        b'"decision"',
    ],
)
def test_named_adversarial_messages(raw):
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason in REASONS
    assert str(info.value).startswith(info.value.reason)


@FUZZ
@given(
    value=st.one_of(st.binary(max_size=3000), json_values.map(_dumps)),
    key=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_dlq_record_of_any_rejected_input_is_bounded_and_round_trips(value, key):
    """The DLQ record built from a rejection keeps the original bytes, its size is bounded."""
    try:
        parse_event(value)
        return
    except EventError as exc:
        reason, detail = exc.reason, exc.detail
    rec = DLQRecord.of(reason, detail, value, source_topic="t.outcomes", timestamp=1.0, key=key)
    out = rec.to_bytes()
    assert len(out) <= 4 * len(value) // 3 + 4 * 2000 + 4 * 256 + 500
    back = parse_event(out)
    assert isinstance(back, DLQRecord)
    assert back.original == value
    assert back.reason == reason


def test_largest_acceptable_message_gives_a_bounded_dlq_record():
    original = b"x" * MAX_EVENT_BYTES
    rec = DLQRecord.of("too_large", "big", original, source_topic="t.decisions", timestamp=1.0)
    assert len(rec.to_bytes()) < 4 * MAX_EVENT_BYTES // 3 + 4096  # well under Kafka's 1 MB default


def test_outcome_accepted_when_clean():
    assert isinstance(_outcome_of_parse(_dumps(VALID_OUTCOME)), OutcomeEvent)
    assert isinstance(_outcome_of_parse(_dumps(VALID_DECISION)), DecisionEvent)


# -- through the stream app's validation, join and store ----------------------------------------

POLICY_ARMS = ["gpt-4", "claude-3", "llama"]


def _lookup():
    from policy_store import make_config

    cfg = make_config(name="provider_selection", arms=POLICY_ARMS, n_features=4)
    return lambda name: cfg if name == cfg.name else None


def _validate(raw: bytes, kind: str):
    """Run the stream app's validation; return (event, config) or the EventError."""
    from stream_app._validation import validate_decision, validate_outcome

    fn = validate_decision if kind == "decision" else validate_outcome
    try:
        return fn(raw, _lookup(), key=b"d-1")
    except EventError as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail
        return exc


@FUZZ
@given(
    kind=st.sampled_from(["decision", "outcome"]),
    field=st.sampled_from(sorted(set(VALID_DECISION) | set(VALID_OUTCOME) | {"learned_arm"})),
    value=json_values,
)
def test_stream_validation_only_raises_event_errors(kind, field, value):
    base = VALID_DECISION if kind == "decision" else VALID_OUTCOME
    _validate(_dumps({**base, field: value}), kind)


@FUZZ
@given(raw=st.binary(max_size=500), kind=st.sampled_from(["decision", "outcome"]))
def test_stream_validation_of_random_bytes(raw, kind):
    assert isinstance(_validate(raw, kind), EventError)


moderate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@FUZZ
@given(
    features=st.lists(moderate, min_size=4, max_size=4),
    quality=st.floats(0, 1),
    cost=st.floats(0, 1e9),
    latency=st.floats(0, 1e9),
    error=st.one_of(st.none(), st.text(max_size=20)),
    outcome_first=st.booleans(),
)
def test_accepted_pairs_give_finite_rewards_and_parameters(
    features, quality, cost, latency, error, outcome_first
):
    """Whatever passes validation joins into a finite reward and finite parameters."""
    from policy_store import InMemoryPolicyStore, Observation
    from stream_app._join import on_decision, on_outcome

    dec = _validate(_dumps({**VALID_DECISION, "features": features}), "decision")
    out = _validate(
        _dumps(
            {**VALID_OUTCOME, "quality": quality, "cost": cost, "latency": latency}
            | ({"error": error} if error is not None else {})
        ),
        "outcome",
    )
    assert not isinstance(dec, EventError), dec
    if isinstance(out, EventError):  # e.g. cost > 1 without a cap is refused, with a reason
        assert out.reason == "schema"
        return
    (decision, cfg), (outcome, _) = dec, out
    spec = cfg.reward
    if outcome_first:
        first = on_outcome(None, outcome, spec, now=10.0)
        step = on_decision(first.state, decision, spec, now=11.0)
    else:
        first = on_decision(None, decision, spec, now=10.0)
        step = on_outcome(first.state, outcome, spec, now=11.0)
    assert len(step.rewards) == 1
    reward = step.rewards[0]
    assert math.isfinite(reward.reward)
    assert parse_event(reward.to_bytes()) == reward
    store = InMemoryPolicyStore()
    store.create(cfg)
    store.apply(
        cfg.name, [Observation(reward.decision_id, reward.arm, reward.features, reward.reward)]
    )
    state = store.read_state(cfg.name)
    for stats in state.arms.values():
        assert all(math.isfinite(v) for v in stats.xx.ravel())
        assert all(math.isfinite(v) for v in stats.b)


@pytest.mark.parametrize("value", [1e155, -1e200, 1.7e308])
def test_features_that_would_overflow_the_parameters_are_refused(value):
    result = _validate(_dumps({**VALID_DECISION, "features": [value, 0.0, 0.0, 1.0]}), "decision")
    assert isinstance(result, EventError)


@pytest.mark.parametrize("ts", [-1e300, 1e300, 0.0, 1_000.0 + 3 * 365 * 86400])
def test_timestamps_outside_a_sane_range_of_the_clock_are_refused(ts):
    from policy_store import make_config
    from stream_app import validate_decision, validate_outcome
    from stream_app._validation import MAX_AGE_SECONDS

    now = 2 * MAX_AGE_SECONDS  # a clock far from 0, so 0.0 is too old
    if ts == 1_000.0 + 3 * 365 * 86400:
        ts = now + 7200.0  # two hours ahead
    cfg = make_config(name="p", arms=["a", "b"], n_features=2)
    dec = DecisionEvent(
        decision_id="d", policy="p", policy_version=0, timestamp=ts, arms=("a", "b"),
        arm="a", propensity=0.5, features=(0.1, 0.2),
    ).to_bytes()  # fmt: skip
    out = OutcomeEvent(decision_id="d", policy="p", timestamp=ts, quality=0.5).to_bytes()
    for fn, raw in ((validate_decision, dec), (validate_outcome, out)):
        with pytest.raises(EventError) as err:
            fn(raw, {"p": cfg}.get, None, now)
        assert err.value.reason == "out_of_range" and "sane range" in err.value.detail
        fn(raw, {"p": cfg}.get, None, None)  # without a clock nothing is checked
