"""Run every benchmark and rewrite ``docs/benchmarks.md`` with their results.

    python benchmarks/run_all.py                   # every benchmark, default sizes
    python benchmarks/run_all.py --quick           # smaller runs, labelled as such
    python benchmarks/run_all.py --only select,learning --out /tmp/bench.md

Each ``benchmarks/bench_*.py`` runs in its own process, one after the other
(timings must not compete for the cores), with ``--out FILE`` so that it writes
its markdown fragment; a benchmark that writes nothing contributes its standard
output instead. The page starts with the date, the machine (CPU model, cores,
Python, numpy, platform), the git commit and the command that produced it;
every section names the command that reproduces it and how long it took. A
benchmark that fails or times out is reported as such (with the end of its
error output) and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Bench:
    """One benchmark script: its short name, the section title and its --quick arguments."""

    name: str
    title: str
    quick: tuple[str, ...] = ()

    @property
    def script(self) -> Path:
        return HERE / f"bench_{self.name}.py"

    def summary(self) -> str:
        """The first paragraph of the script's docstring (what it measures)."""
        try:
            doc = ast.get_docstring(ast.parse(self.script.read_text())) or ""
        except (OSError, SyntaxError):
            return ""
        return " ".join(doc.split("\n\n")[0].split())


# Known benchmarks in page order; other bench_*.py files found are appended.
KNOWN = (
    Bench("select", "Selection latency", ("--iterations", "5000")),
    Bench("proxy", "Proxy overhead: select + enqueue", ("--iterations", "5000")),
    Bench(
        "pipeline",
        "Pipeline throughput and freshness",
        ("--pairs", "10000", "--raw", "20000", "--fresh", "50"),
    ),
    Bench(
        "learning",
        "Learning quality against Vowpal Wabbit and MABWiser",
        ("--rounds", "1500", "--seeds", "2"),
    ),
    Bench(
        "constrained",
        "Constrained objectives: quality floor and budget against oracles and ParetoBandit",
        ("--quick",),
    ),
    Bench("constrained_pipeline", "Constrained objectives through the pipeline", ("--quick",)),
    Bench(
        "pipeline_learning",
        "Learning through the Kafka / Faust / Redis pipeline",
        ("--rounds", "2000", "--seeds", "3"),
    ),
    Bench(
        "memory",
        "Redis memory of a policy: state and exactly-once bookkeeping",
        ("--rewards", "10000,100000", "--legacy", "10000"),
    ),
    Bench(
        "litellm",
        "LiteLLM: the routing plugin's overhead against LiteLLM's own strategies",
        ("--iterations", "1000"),
    ),
    Bench(
        "restore",
        "Join-table restore with and without checkpoints",
        ("--changes", "50000,200000", "--pairs", "10000", "--rounds", "2"),
    ),
)


# Scripts never picked up automatically (run them by hand).
EXCLUDED = frozenset(
    {
        # a one-off measurement behind the choice of stream engine (it runs a prototype
        # driver kept beside it), not a number to track on docs/benchmarks.md
        "engine_choice",
    }
)


def discover() -> list[Bench]:
    """The known benchmarks that exist, then any other ``bench_*.py`` not in ``EXCLUDED``."""
    found = [b for b in KNOWN if b.script.exists()]
    known = {b.name for b in KNOWN}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if name not in known and name not in EXCLUDED:
            found.append(Bench(name, name.replace("_", " ").capitalize()))
    return found


@dataclass
class Outcome:
    bench: Bench
    command: str
    seconds: float
    returncode: int | None  # None: timed out
    markdown: str
    stderr_tail: str


def run_one(bench: Bench, extra: list[str], timeout: float) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fragment.md"
        writes_file = '"--out"' in bench.script.read_text()
        argv = [sys.executable, str(bench.script), *extra]
        if writes_file:
            argv += ["--out", str(out)]
        shown = " ".join(
            ["python", f"benchmarks/{bench.script.name}", *map(shlex.quote, extra)]
        ).strip()
        t0 = time.perf_counter()
        rc, stdout, stderr = _run(argv, timeout)
        seconds = time.perf_counter() - t0
        text = out.read_text() if out.exists() and out.stat().st_size else stdout
        text = text.replace(f" --out {out}", "")
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return Outcome(bench, shown, seconds, rc, scrub(text.strip()), scrub(tail))


def scrub(text: str) -> str:
    """Keep this machine's paths out of the page (the repository, home and temp dirs)."""
    text = text.replace(str(ROOT), ".").replace(str(Path.home()), "~")
    return re.sub(r"(?<![\w.])/tmp/[^\s`'\"]*", "<tmp>", text)


def _run(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run in a new process group; on timeout interrupt the whole group (so the benchmark
    stops the services it started), then kill what is left. Returns (code or None, out, err)."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return None, out, err
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def demote_headings(markdown: str, levels: int = 2) -> str:
    """Push headings down so that a fragment's ``#`` titles nest under its section.

    >>> demote_headings("# A\\n```\\n# not a heading\\n```\\n## B", 2)
    '### A\\n```\\n# not a heading\\n```\\n#### B'
    """
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out)


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info = {
        "cpu": cpu,
        "cores": f"{usable} usable of {os.cpu_count()} (nproc {usable})",
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    for mod in ("vowpalwabbit", "mabwiser", "paretobandit", "confluent_kafka", "faust"):
        try:
            from importlib.metadata import version

            dist = {"confluent_kafka": "confluent-kafka", "faust": "faust-streaming"}.get(mod, mod)
            info[dist] = version(dist)
        except Exception:  # noqa: BLE001 - optional peers may be missing
            continue
    return info


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(outcomes: list[Outcome], command: str, started: datetime, quick: bool) -> str:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run_all.py`; do not edit by hand — rerun it.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}`"
        + ("  (quick mode: smaller runs than the defaults)" if quick else ""),
        f"- Commit: {git_commit()}",
        f"- Machine: {info.pop('cpu')}, {info.pop('cores')}",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "The machine is shared and has few cores: compare numbers within one table (peers are "
        "measured in the same run), not across pages.",
        "",
        "| benchmark | result | time |",
        "|---|---|---|",
    ]
    for o in outcomes:
        status = (
            "ok"
            if o.returncode == 0
            else ("timed out" if o.returncode is None else f"failed (exit {o.returncode})")
        )
        anchor = re.sub(r"[^a-z0-9 -]", "", o.bench.title.lower()).replace(" ", "-")
        lines.append(f"| [{o.bench.title}](#{anchor}) | {status} | {o.seconds:.0f} s |")
    for o in outcomes:
        lines += ["", f"## {o.bench.title}", ""]
        if summary := o.bench.summary():
            lines += [summary, ""]
        lines += [f"Reproduce: `{o.command}` ({o.seconds:.0f} s)", ""]
        if o.returncode != 0:
            what = "timed out" if o.returncode is None else f"exited with code {o.returncode}"
            lines += [
                f"**This run {what}.** End of its error output:",
                "",
                "```",
                o.stderr_tail or "(nothing)",
                "```",
                "",
            ]
        if o.markdown:
            lines.append(demote_headings(o.markdown))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="page to rewrite (default docs/benchmarks.md)",
    )
    ap.add_argument("--only", help="comma-separated benchmark names, e.g. select,learning")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    ap.add_argument("--quick", action="store_true", help="smaller runs (labelled on the page)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds before one benchmark is stopped (default 1800)",
    )
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)

    benches = discover()
    if args.list:
        for b in benches:
            print(f"{b.name:<20} {b.title}  ({b.script.name})")
        return 0
    names = {b.name for b in benches}
    chosen = set(args.only.split(",")) if args.only else names
    chosen -= set(filter(None, args.skip.split(",")))
    unknown = chosen - names
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; available: {sorted(names)}")
    started = datetime.now(UTC)
    outcomes = []
    for b in benches:
        if b.name not in chosen:
            continue
        extra = list(b.quick) if args.quick else []
        print(f"running {b.script.name} {' '.join(extra)} …", file=sys.stderr, flush=True)
        o = run_one(b, extra, args.timeout)
        status = "ok" if o.returncode == 0 else f"FAILED ({o.returncode})"
        print(f"  {status} in {o.seconds:.0f} s", file=sys.stderr, flush=True)
        outcomes.append(o)
    shown = ["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]
    text = render(outcomes, " ".join(map(shlex.quote, shown)), started, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(o.returncode == 0 for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
