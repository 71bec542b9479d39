"""Celery workers and the Redis weight store of the learning cores.

- :mod:`workers.weight_store`: versioned, checked blobs per (namespace, core), compare-and-set
  writes by Lua script; split by job into :mod:`workers.store_keys` (key layout),
  :mod:`workers.store_record` (record codec), :mod:`workers.store_queue` (queue, drain lock,
  tickets) and :mod:`workers.store_history` (registry, history, rollback).
- :mod:`workers.events`: queued events as they sit in a queue (JSON head, raw float64 vectors).
- :mod:`workers.cores`: applying queued events to a core (pure; batch = one by one).
- :mod:`workers.drain`: the drain loop (lock, micro-batches, crash isolation).
- :mod:`workers.app` / :mod:`workers.tasks`: the Celery app, its tasks and beat schedule.
- :mod:`workers.service` / :mod:`workers.verbs`: the caller's side and the learning verbs of the
  dispatch surface (registered on ``kg.dispatch``).
- :mod:`service.http`: ``POST /v1/dispatch`` and ``GET /openapi.json``.
- :mod:`workers.state_file` / :mod:`workers.state_format`: state files (``kg state export`` /
  ``import``; ``save_state`` / ``load_state``).

See docs/workers.md.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module: loaded on first use, so that importing a pure module of the package
# (``workers.cores``, ``workers.events``) loads no Redis or Celery client
_EXPORTS = {
    "Event": "workers.events",
    "Learning": "workers.service",
    "NotInitialised": "workers.errors",
    "Record": "workers.store_record",
    "StateCorrupt": "workers.errors",
    "StateFileError": "workers.errors",
    "StateKeys": "workers.store_keys",
    "UpdateFailed": "workers.errors",
    "WeightStore": "workers.weight_store",
    "WorkerTimeout": "workers.errors",
    "event_bytes": "workers.events",
    "load_state": "workers.state_file",
    "make_ticket": "workers.service",
    "parse_ticket": "workers.service",
    "save_state": "workers.state_file",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
