"""Run ``rl-commons worker`` as a child process (start / wait_ready / kill / stop).

    w = WorkerProcess(settings, "w1", app_id="g-abc", workdir=tmp_path).start()
    w.wait_ready()      # joined the group, owns partitions, table recovered
    ...
    w.kill()            # SIGKILL, no cleanup
    w.stop()            # SIGTERM, waits for exit

Extra CLI options go in ``args`` (e.g. ``["--sweep-interval", "0.2"]``). The worker runs
in its own process group (Ctrl-C in a terminal reaches only the parent, which stops it)
and logs to ``<workdir>/<worker_id>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from policy_store import Settings

from .embedded import EmbeddedServiceError, free_port


def stop_process_group(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM ``proc``'s process group, wait ``timeout`` s, then SIGKILL. Returns the exit code.

    ``proc`` must lead its own group (``start_new_session=True``).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    else:  # leader gone: make sure nothing it spawned lingers
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


class WorkerProcess:
    """One stream worker in a child process, logging to ``<workdir>/<worker_id>.log``.

    ``web=False`` starts it ``--without-web`` (no ``/ready``: ``wait_ready`` cannot be used);
    ``cwd`` is the child's working directory.
    """

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        *,
        app_id: str,
        workdir: str | Path,
        args: list[str] | None = None,
        loglevel: str = "info",
        web: bool = True,
        cwd: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.app_id = app_id
        self.workdir = Path(workdir)
        self.args = list(args or [])
        self.loglevel = loglevel
        self.web_port = free_port() if web else None
        self.cwd = cwd
        self.log_path = self.workdir / f"{worker_id}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> WorkerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        web = ["--web-port", str(self.web_port)] if self.web_port else ["--without-web"]
        cmd = [
            sys.executable, "-m", "stream_app.ops.cli", "worker",
            "--app-id", self.app_id,
            *web,
            "--datadir", str(self.workdir / f"{self.worker_id}-data"),
            "--loglevel", self.loglevel,
            *self.args,
        ]  # fmt: skip
        env = {**os.environ, **self.settings.child_env(), "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ready(self) -> bool:
        try:
            status, body = self.get("/ready", timeout=1.0)
        except OSError:
            return False
        return status == 200 and json.loads(body).get("ready", False)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the worker owns partitions and is not rebalancing; raises with the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise EmbeddedServiceError(f"worker {self.worker_id} exited:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.worker_id} not ready in {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to commit, flush or leave the group."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap(5.0)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM its process group and wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                stop_process_group(self.proc, timeout)
        return self._reap(5.0)

    def _reap(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
