"""Celery workers and the Redis weight store of the learning cores.

- :mod:`workers.weight_store`: versioned, checked blobs per (namespace, core), compare-and-set
  writes by Lua script, queues, results, history and rollback.
- :mod:`workers.cores`: applying queued events to a core (pure; batch = one by one).
- :mod:`workers.drain`: the drain loop (lock, micro-batches, crash isolation).
- :mod:`workers.app` / :mod:`workers.tasks`: the Celery app, its tasks and beat schedule.
- :mod:`workers.service` / :mod:`workers.verbs`: the caller's side and the learning verbs of the
  dispatch surface (registered on ``kg.dispatch``).
- :mod:`workers.http`: ``POST /v1/dispatch`` and ``GET /openapi.json``.

See docs/workers.md.
"""

from workers.errors import NotInitialised, StateCorrupt, UpdateFailed, WorkerTimeout
from workers.service import Learning, make_ticket, parse_ticket
from workers.weight_store import Event, Record, StateKeys, WeightStore, event_json

__all__ = [
    "Event",
    "Learning",
    "NotInitialised",
    "Record",
    "StateCorrupt",
    "StateKeys",
    "UpdateFailed",
    "WeightStore",
    "WorkerTimeout",
    "event_json",
    "make_ticket",
    "parse_ticket",
]
