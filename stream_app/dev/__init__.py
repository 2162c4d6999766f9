"""Development tools: the embedded broker and Redis (``embedded``), a worker run as a
subprocess (``WorkerProcess``), the simulated providers of the demo (``simulated``) and
the demo itself (``demo``). Nothing here is used by a production worker or proxy.
"""

from ._worker_process import WorkerProcess, stop_process_group
from .embedded import (
    EmbeddedBroker,
    EmbeddedRedis,
    EmbeddedServiceError,
    EmbeddedServices,
    free_port,
)

__all__ = [
    "EmbeddedBroker",
    "EmbeddedRedis",
    "EmbeddedServiceError",
    "EmbeddedServices",
    "WorkerProcess",
    "free_port",
    "stop_process_group",
]
