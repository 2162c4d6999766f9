"""How every benchmark reports: the command line that reproduces it, and the markdown
printed and (with ``--out FILE``) written for ``run_all.py`` to collect."""

from __future__ import annotations

import sys
from pathlib import Path


def command_line(script: str, argv: list[str] | None) -> str:
    """``python benchmarks/<script> <arguments>`` as it was run."""
    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{script} {' '.join(args)}".strip()


def emit(text: str, out: Path | None) -> int:
    """Print ``text`` and write it to ``out`` when given; returns the exit code 0."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0
