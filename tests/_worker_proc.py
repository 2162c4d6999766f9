"""Run ``rl-commons worker`` as a subprocess in tests: see ``stream_app.dev._worker_process``."""

from __future__ import annotations

from stream_app.dev import WorkerProcess

__all__ = ["WorkerProcess"]
