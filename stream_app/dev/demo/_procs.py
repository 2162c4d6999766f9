"""Child processes of the demo (stream worker, dashboard): started in their own process
group with their output in a log file, and always stopped — SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._worker_process import stop_process_group


@dataclass
class Child:
    """One ``rl-commons`` subcommand running as a child process."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Child:
        log_path = log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stream_app.ops.cli", *args],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop it
            )
        return cls(name, proc, log_path)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 8.0) -> int | None:
        """SIGTERM the whole process group, wait, then SIGKILL. Returns the exit code."""
        return stop_process_group(self.proc, timeout)


def wait_http(url: str, timeout: float, child: Child | None = None) -> bool:
    """Poll ``url`` until it answers (any HTTP status) or ``timeout`` passes."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.running:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False
