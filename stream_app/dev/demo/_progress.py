"""A plain progress line on stderr (no dependency): a bar and the live figures."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO


def bar(done: int, total: int, width: int = 24) -> str:
    """``[#####-----]`` for done/total.

    >>> bar(5, 10, 10)
    '[#####-----]'
    """
    total = max(total, 1)
    filled = min(width, int(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def format_line(done: int, total: int, figures: Mapping[str, str]) -> str:
    """One status line: bar, count, then ``key value`` pairs.

    >>> format_line(1, 4, {"rollout": "10%"})
    '[######------------------]    1/4      25% | rollout 10%'
    """
    pct = 100 * done / max(total, 1)
    head = f"{bar(done, total)} {done:>4}/{total:<4} {pct:4.0f}%"
    return " | ".join([head, *(f"{k} {v}" for k, v in figures.items())])


class Progress:
    """Rewrites one line on a terminal; on a pipe prints a line every ``every`` seconds."""

    def __init__(self, total: int, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every
        self._last = 0.0
        self._width = 0

    def update(self, done: int, figures: Mapping[str, str], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else self.every):
            return
        self._last = now
        line = format_line(done, self.total, figures)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (e.g. 'rollout raised to 25%') without breaking the bar."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
