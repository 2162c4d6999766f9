"""The README's own examples, run as written against the embedded services `rl-commons dev`
starts: no value is clipped by the reward spec and nothing is warned about.

The README marks the blocks to run with ``<!-- readme-test -->`` on the line before the fence:
of a shell block, the ``rl-commons policy create`` line runs first, through the real entry
point (the other lines start services the fixtures provide); then the Python blocks run in
order in one namespace.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from policy_store import RewardSpec
from producers import OutcomeEvent, parse_event
from tests.integration._stream_helpers import read_topic

README = Path(__file__).resolve().parents[2] / "README.md"
RLC = str(Path(sys.executable).with_name("rl-commons"))
MARKED = re.compile(r"<!-- readme-test -->\n```(\w*)\n(.*?)\n```", re.S)


def marked_blocks() -> list[tuple[str, str]]:
    """(language, code) of every block the README marks for this test, in order."""
    return MARKED.findall(README.read_text())


def test_the_readme_marks_its_examples():
    languages = [lang for lang, _ in marked_blocks()]
    assert languages.count("python") == 3 and "" in languages


@pytest.fixture
def clip_spy(monkeypatch):
    """Every value the reward spec normalises, before its clip to [0, 1]."""
    seen: list[tuple[str, float]] = []
    cost, latency = RewardSpec.normalise_cost, RewardSpec.normalise_latency

    def spy_cost(self, value):
        seen.append(("cost", value / self.cost_cap if self.cost_cap else value))
        return cost(self, value)

    def spy_latency(self, value):
        seen.append(("latency", value / self.latency_cap_ms if self.latency_cap_ms else value))
        return latency(self, value)

    monkeypatch.setattr(RewardSpec, "normalise_cost", spy_cost)
    monkeypatch.setattr(RewardSpec, "normalise_latency", spy_latency)
    return seen


def test_readme_examples_run_without_clipping_or_warnings(
    services, settings, topics, redis_store, monkeypatch, caplog, clip_spy
):
    env = {
        "RL_COMMONS_KAFKA_BOOTSTRAP": services.bootstrap,
        "RL_COMMONS_REDIS_URL": services.redis_url,
        "RL_COMMONS_KEY_PREFIX": settings.key_prefix,
        "RL_COMMONS_TOPIC_PREFIX": settings.topic_prefix,
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("RL_COMMONS_")}
    for k in [k for k in os.environ if k.startswith("RL_COMMONS_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    namespace: dict = {}
    ran_python = ran_cli = 0
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        blocks = marked_blocks()
        for code in (code for language, code in blocks if language != "python"):
            for line in code.splitlines():  # the README runs the streaming example after these
                if line.startswith("rl-commons policy create"):
                    argv = shlex.split(line.split("#")[0])[1:]
                    proc = subprocess.run([RLC, *argv], env={**base, **env}, text=True,
                                          capture_output=True, timeout=60)  # fmt: skip
                    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
                    assert "cost cap $0.01, latency cap 10000 ms" in proc.stdout
                    ran_cli += 1
        for code in (code for language, code in blocks if language == "python"):
            exec(compile(code, f"README.md block {ran_python + 1}", "exec"), namespace)
            ran_python += 1
    assert (ran_python, ran_cli) == (3, 1)
    ours = [w for w in caught if "site-packages" not in w.filename]
    assert not ours, [str(w.message) for w in ours]
    assert not caplog.records, [r.getMessage() for r in caplog.records]

    # in-process: every cost and latency the README reports is inside its cap
    assert clip_spy and all(0.0 <= v <= 1.0 for _, v in clip_spy), clip_spy
    # streaming: the outcome parts on the topic, read with the policy's reward spec
    spec = redis_store.get_config("provider_selection").reward
    decision = namespace["decision"]
    events = [parse_event(m.value()) for m in read_topic(services.bootstrap, topics.outcomes)]
    outcomes = [
        e for e in events if isinstance(e, OutcomeEvent) and e.decision_id == decision.decision_id
    ]
    assert len(outcomes) == 2 and decision.logged
    clip_spy.clear()
    for e in outcomes:
        if e.cost is not None:
            spec.normalise_cost(e.cost)
        if e.latency is not None:
            spec.normalise_latency(e.latency)
    assert sorted(clip_spy) == [("cost", pytest.approx(0.4)), ("latency", pytest.approx(0.085))]
