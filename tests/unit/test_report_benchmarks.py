"""benchmarks/run_all.py: the page it writes (no benchmark is run here)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("run_all", None)


def test_page_has_date_machine_command_and_every_section(run_all):
    ok = run_all.Outcome(
        run_all.Bench("select", "Selection latency"),
        "python benchmarks/bench_select.py",
        12.0,
        0,
        "# Title\n| a | b |\n|---|---|\n| 1 | 2 |",
        "",
    )
    bad = run_all.Outcome(
        run_all.Bench("pipeline", "Pipeline"),
        "python benchmarks/bench_pipeline.py",
        600.0,
        None,
        "",
        "Traceback ...\nKeyboardInterrupt",
    )
    page = run_all.render(
        [ok, bad],
        "python benchmarks/run_all.py",
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        quick=False,
    )
    assert "- Date: 2026-01-02 03:04 UTC" in page
    assert "- Command: `python benchmarks/run_all.py`" in page
    assert "nproc" in page and "python" in page.lower()
    assert "## Selection latency" in page and "### Title" in page  # fragment nested
    assert "| [Pipeline](#pipeline) | timed out | 600 s |" in page
    assert "KeyboardInterrupt" in page


def test_machine_paths_are_scrubbed(run_all):
    text = f"see {run_all.ROOT}/benchmarks/x.py and /tmp/abc123/fragment.md and {Path.home()}/x"
    out = run_all.scrub(text)
    assert str(run_all.ROOT) not in out and "/tmp/" not in out and str(Path.home()) not in out


def test_every_known_benchmark_exists_or_is_skipped(run_all):
    names = [b.name for b in run_all.discover()]
    assert len(names) == len(set(names))
    assert all((ROOT / "benchmarks" / f"bench_{n}.py").exists() for n in names)
