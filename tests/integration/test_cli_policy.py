"""`rl-commons policy create|list|show|delete` against a real Redis, bad input included."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from policy_store import Observation
from stream_app.ops.cli import main


@pytest.fixture
def cli(services, key_prefix, capsys):
    """Run the CLI in-process against the test Redis; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--redis-url", services.redis_url, "--key-prefix", key_prefix])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_create_then_show_and_list(cli, redis_store):
    code, out, err = cli(
        "policy", "create", "route", "--arms", "gpt-4, claude-3,llama", "--features", "4",
        "--algorithm", "ts", "--rollout", "0.2", "--baseline-arm", "claude-3",
    )  # fmt: skip
    assert code == 0, err
    assert "created policy 'route'" in out
    cfg = redis_store.get_config("route")
    assert cfg.arms == ("gpt-4", "claude-3", "llama")
    assert (cfg.n_features, cfg.algorithm.name, cfg.rollout_fraction) == (4, "ts", 0.2)
    assert cfg.baseline_arm == "claude-3" and cfg.enabled

    code, out, _ = cli("policy", "show", "route", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["version"] == 0 and shown["config"]["arms"] == list(cfg.arms)
    code, out, _ = cli("policy", "show", "route")
    assert code == 0 and "rollout_fraction: 0.2" in out and 'baseline_arm: "claude-3"' in out

    cli("policy", "create", "other", "--arms", "a", "--features", "1", "--disabled")
    code, out, _ = cli("policy", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["NAME", "STATE", "ROLLOUT"]
    assert [ln.split()[:3] for ln in lines[1:]] == [
        ["other", "DISABLED", "10%"],
        ["route", "enabled", "20%"],
    ]
    code, out, _ = cli("policy", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["other", "route"]


def test_create_from_config_file_with_overrides(cli, redis_store, tmp_path):
    f = tmp_path / "p.json"
    f.write_text(
        json.dumps(
            {
                "arms": ["x", "y"],
                "n_features": 3,
                "reward": {"quality_weight": 1.0, "cost_weight": 0.0, "latency_weight": 0.0},
                "algorithm": {"alpha": 1.5},
            }
        )
    )
    code, _, err = cli("policy", "create", "filed", "--config", str(f), "--algorithm", "ts")
    assert code == 0, err
    cfg = redis_store.get_config("filed")
    assert cfg.reward.quality_weight == 1.0 and cfg.algorithm.alpha == 1.5
    assert cfg.algorithm.name == "ts" and cfg.arms == ("x", "y")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--arms", "a,,b", "--features", "2"], "bad --arms 'a,,b'"),
        (["--arms", "  ", "--features", "2"], "bad --arms"),
        (["--arms", "a,a", "--features", "2"], "remove the duplicates ['a']"),
        (["--arms", "a b", "--features", "2"], "use 1-100 characters"),
        (["--arms", "a,b"], "needs --features"),
        (["--features", "2"], "needs --arms"),
        (["--arms", "a,b", "--features", "0"], "n_features"),
        (["--arms", "a,b", "--features", "2", "--rollout", "2"], "rollout_fraction"),
        (["--arms", "a,b", "--features", "2", "--baseline-arm", "z"], "baseline_arm 'z'"),
    ],
)
def test_create_refuses_bad_input_and_says_what_to_fix(cli, redis_store, argv, expected):
    code, out, err = cli("policy", "create", "bad", *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and expected in err
    assert redis_store.list_policies() == []


def test_create_bad_config_file(cli, tmp_path):
    code, _, err = cli("policy", "create", "p", "--config", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read --config" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = cli("policy", "create", "p", "--config", str(bad))
    assert code == 1 and "not valid JSON (line 1" in err
    bad.write_text('{"arms": ["a"], "n_features": 1, "colour": "red"}')
    code, _, err = cli("policy", "create", "p", "--config", str(bad))
    assert code == 1 and "colour" in err and "remove it or check its spelling" in err


def test_create_existing_name_is_refused(cli):
    assert cli("policy", "create", "dup", "--arms", "a", "--features", "1")[0] == 0
    code, _, err = cli("policy", "create", "dup", "--arms", "a", "--features", "1")
    assert code == 1 and "already exists" in err


def test_list_empty_says_how_to_create(cli):
    code, out, _ = cli("policy", "list")
    assert code == 0 and "no policies" in out and "rl-commons policy create" in out


def test_show_and_delete_unknown_policy(cli):
    for argv in (("policy", "show", "ghost"), ("policy", "delete", "ghost", "--yes")):
        code, out, err = cli(*argv)
        assert code == 1 and out == ""
        assert "no policy named 'ghost'" in err and "rl-commons policy create" in err


def test_delete_needs_confirmation(cli, redis_store, redis_client, key_prefix, monkeypatch):
    cli("policy", "create", "gone", "--arms", "a,b", "--features", "1")
    redis_store.apply("gone", [Observation("d1", "a", (1.0,), 1.0)])
    # not a terminal and no --yes: refused, nothing deleted
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _, err = cli("policy", "delete", "gone")
    assert code == 1 and "pass --yes" in err
    assert redis_store.list_policies() == ["gone"]

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty("n\n"))
    code, _, err = cli("policy", "delete", "gone")
    assert code == 1 and "cancelled" in err and redis_store.list_policies() == ["gone"]
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    code, out, _ = cli("policy", "delete", "gone")
    assert code == 0 and "deleted policy 'gone'" in out
    assert redis_store.list_policies() == []
    assert redis_client.keys(f"{key_prefix}:{{gone}}:*") == []


def test_redis_unreachable_names_the_url(capsys):
    code = main(["policy", "list", "--redis-url", "redis://127.0.0.1:1/0"])
    err = capsys.readouterr().err
    assert code == 1 and "Redis unreachable at redis://127.0.0.1:1/0" in err
    assert "RL_COMMONS_REDIS_URL" in err


def test_every_subcommand_has_help(capsys):
    for argv in (
        ["policy"], ["policy", "create"], ["policy", "list"], ["policy", "show"],
        ["policy", "delete"], ["inspect"], ["rollout"], ["disable"], ["enable"], ["reset"],
        ["objective"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: rl-commons") and len(out.splitlines()) > 3, argv


def test_console_script_smoke(services, key_prefix):
    exe = os.path.join(os.path.dirname(sys.executable), "rl-commons")
    env = {**os.environ, "RL_COMMONS_REDIS_URL": services.redis_url,
           "RL_COMMONS_KEY_PREFIX": key_prefix}  # fmt: skip
    run = lambda *a: subprocess.run(  # noqa: E731
        [exe, *a], env=env, capture_output=True, text=True, timeout=60
    )
    made = run("policy", "create", "smoke", "--arms", "a,b", "--features", "2")
    assert made.returncode == 0, made.stderr
    shown = run("inspect", "smoke")
    assert shown.returncode == 0 and "policy     smoke" in shown.stdout
    bad = run("rollout", "smoke", "-0.5")
    assert bad.returncode == 1 and "out of range" in bad.stderr
