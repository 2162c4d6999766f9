"""The wire contract as the proxy produces it: fast-encoded decisions equal validated ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import LinUCB, PolicyState
from producers import DecisionEvent, OutcomeEvent, json_schemas, parse_event
from producers._decision import _DecisionEncoder, new_decision_id


def _snapshot(arms=("gpt-4", "claude-3", "llama"), d=3, version=7):
    snap = LinUCB().snapshot(PolicyState(arms={}, version=version), arms, d)
    return snap


@pytest.mark.parametrize(
    "features",
    [(1.0, 0.01, 1.0), (0.0, -2.5e-07, 1e300), (1 / 3, 123456.789, -0.0)],
)
@pytest.mark.parametrize(
    "cohort,learned", [("rl", None), ("baseline", ("llama", 0.34)), ("shadow", ("gpt-4", 0.0))]
)
def test_fast_encoded_decision_equals_validated_event(features, cohort, learned):
    snap = _snapshot()
    enc = _DecisionEncoder("provider_selection", snap)
    did = new_decision_id()
    learned_arm, learned_p = learned or (None, None)
    raw = enc.encode(
        did, 1764100000.123456, "claude-3", 0.49, features, cohort, *learned or (None, None)
    )
    parsed = parse_event(raw)
    expected = DecisionEvent(
        decision_id=did,
        policy="provider_selection",
        policy_version=7,
        timestamp=1764100000.123456,
        arms=snap.arms,
        arm="claude-3",
        propensity=0.49,
        features=features,
        cohort=cohort,
        learned_arm=learned_arm,
        learned_propensity=learned_p,
    )
    assert parsed == expected
    assert parse_event(expected.to_bytes()) == parsed


def test_decision_ids_are_valid_and_distinct():
    ids = {new_decision_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in list(ids)[:100])


def test_served_arm_must_be_offered():
    with pytest.raises(ValueError, match="not among the offered arms"):
        DecisionEvent(
            decision_id="d1",
            policy="p",
            policy_version=0,
            timestamp=1.0,
            arms=("a",),
            arm="b",
            propensity=1.0,
            features=(1.0,),
        )


def test_outcome_parts_and_ranges():
    part = OutcomeEvent(decision_id="d1", timestamp=1.0, cost=0.2, latency=0.1)
    assert parse_event(part.to_bytes()) == part
    assert part.quality is None and not part.final
    with pytest.raises(ValueError):
        OutcomeEvent(decision_id="d1", timestamp=1.0, quality=1.5)


def test_non_finite_feature_never_leaves_the_selector():
    from producers import FeatureError, ProviderSelector

    sel = ProviderSelector(feature_fn=lambda r: [1.0, float("nan")], n_features=2, seed=0)
    with pytest.raises(FeatureError, match="NaN"):
        sel.select({})
    assert np.isfinite(sel.reader.view.snapshot.theta).all()


def test_schema_cli_prints_every_event(capsys):
    from stream_app.ops.cli import main

    assert main(["schema"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json_schemas()
    assert set(out) == {"DecisionEvent", "OutcomeEvent", "RewardEvent", "DLQRecord"}
    assert out["DecisionEvent"]["properties"]["type"]["const"] == "decision"


def test_schema_cli_one_type_and_unknown_type(capsys):
    from stream_app.ops.cli import main

    assert main(["schema", "--type", "outcome"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["OutcomeEvent"]
    assert main(["schema", "--type", "nope"]) == 2
    assert "use one of DecisionEvent (decision)" in capsys.readouterr().err


def test_producer_settings_rendering_and_secrets():
    from policy_store import Settings
    from producers import EventProducer, producer_config

    s = Settings(
        kafka_bootstrap="k1:9093,k2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="proxy",
        kafka_sasl_password="s3cr3t-pw",
        kafka_ssl_cafile="ca.pem",
        kafka_ssl_certfile="client.pem",
        kafka_ssl_keyfile="client.key",
        producer_queue_max=1234,
    )
    cfg = producer_config(s)
    assert cfg["bootstrap.servers"] == "k1:9093,k2:9093"
    assert cfg["security.protocol"] == "SASL_SSL"
    assert (cfg["sasl.mechanism"], cfg["sasl.username"], cfg["sasl.password"]) == (
        "SCRAM-SHA-512",
        "proxy",
        "s3cr3t-pw",
    )
    assert (cfg["ssl.ca.location"], cfg["ssl.certificate.location"]) == ("ca.pem", "client.pem")
    assert cfg["ssl.key.location"] == "client.key"
    assert cfg["queue.buffering.max.messages"] == 1234
    assert cfg["partitioner"] == "murmur2_random" and cfg["compression.type"] == "none"
    shown = EventProducer(s).describe()
    assert shown["sasl.password"] == "***" and "s3cr3t" not in repr(shown)
    plain = producer_config(Settings(kafka_sasl_username="ignored"))
    assert "sasl.username" not in plain  # SASL only with a SASL protocol


def test_refused_config_is_a_clear_error_at_start_and_a_counted_drop_at_send(tmp_path):
    from policy_store import Settings
    from producers import EventProducer

    s = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="RL_COMMONS_KAFKA"):
        EventProducer(s).start()
    lazy = EventProducer(s)
    assert lazy.send("t", "k", b"{}") is False  # never raises into the caller
    assert lazy.metrics()["dropped"] == 1 and lazy.metrics()["last_error"]


def test_public_names_are_exported():
    import producers

    for name in producers.__all__:
        assert getattr(producers, name) is not None
    for name in (
        "ProviderSelector",
        "SafeProviderSelector",
        "LLMClient",
        "RLTracker",
        "EventProducer",
        "Decision",
    ):
        assert name in producers.__all__


def test_send_after_close_is_a_counted_drop():
    from policy_store import Settings
    from producers import EventProducer

    p = EventProducer(Settings(kafka_bootstrap="127.0.0.1:1"))
    assert p.send("t", "k", b"{}") is True  # queued (nothing listens, nothing lost yet)
    assert p.close(0) == 1
    assert p.send("t", "k", b"{}") is False
    m = p.metrics()
    assert (m["enqueued"], m["dropped"], m["delivered"]) == (1, 1, 0)


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    features=st.lists(finite, min_size=3, max_size=3),
    propensity=st.floats(min_value=1e-300, max_value=1.0),
    learned=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
    timestamp=st.floats(min_value=0.0, max_value=4e9),
    version=st.integers(min_value=0, max_value=2**53),
)
def test_fast_encoding_round_trips_any_finite_values(
    features, propensity, learned, timestamp, version
):
    snap = _snapshot(version=version)
    enc = _DecisionEncoder("p.v-1_x", snap)
    features = tuple(features)
    learned_arm = None if learned is None else "llama"
    raw = enc.encode(
        "id-1:2", timestamp, "gpt-4", propensity, features, "shadow", learned_arm, learned
    )
    event = parse_event(raw)
    assert event.features == features and event.propensity == propensity
    assert event.timestamp == timestamp and event.policy_version == version
    assert event.learned_propensity == learned


def test_decision_ids_differ_in_a_forked_child():
    """Without a reseed at fork, parent and child would draw the same ids."""
    import os

    from producers._decision import new_decision_id

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write_end, new_decision_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    parent = new_decision_id()
    assert len(child) == len(parent) == 32
    assert child != parent
