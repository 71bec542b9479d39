"""Per-process connections of a worker: created after the fork, closed at shutdown.

A Redis client or a Bolt driver must not cross a fork, so each pool process builds its own on first
use (and :func:`reset` runs at ``worker_process_init`` to drop anything inherited). The pid check
makes the same true for any other forking host.
"""

from __future__ import annotations

import os
import threading

from kg.config import Settings
from workers.connect import redis_client
from workers.drain import Drainer
from workers.weight_store import WeightStore

_lock = threading.Lock()
_current: "Runtime | None" = None


class Runtime:
    """Redis client, weight store and drainer of one process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.pid = os.getpid()
        self.settings = settings or Settings.from_env()
        self.redis = redis_client(self.settings)
        self.store = WeightStore(self.redis, self.settings.workers)
        self.drainer = Drainer(self.store)

    def close(self) -> None:
        self.redis.close()


def runtime(settings: Settings | None = None) -> Runtime:
    """This process's runtime (built on first use, from ``settings`` or the environment). Asked
    for other ``settings`` than it was built with (a second app in one process: a test, an embedded
    beat), it is rebuilt for them rather than answering from the first app's Redis."""
    global _current
    with _lock:
        stale = _current is not None and settings is not None and _current.settings != settings
        if stale and _current.pid == os.getpid():
            _current.close()
        if _current is None or stale or _current.pid != os.getpid():
            _current = Runtime(settings)
        return _current


def reset() -> None:
    """Forget connections inherited from a parent process (without closing its sockets)."""
    global _current
    with _lock:
        _current = None


def shutdown() -> None:
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            _current.close()
        _current = None
