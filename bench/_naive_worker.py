"""The Celery app of the throughput benchmark's naive row: the product's app and tasks, plus
``bench.apply_one``, a task that applies one queued event (load, apply, compare-and-set) without
the drain's lock or micro-batches: what one Celery task per event would cost.

Started as ``celery -A bench._naive_worker worker`` by ``bench.workers_throughput``.
"""

from __future__ import annotations

from workers import runtime as rt
from workers.app import app
from workers.drain import DrainReport
from workers.tasks import KgTask


@app.task(base=KgTask, name="bench.apply_one")
def apply_one(ns: str, core: str) -> dict:
    """Apply the head event of a state's queue (another task may take it first: then the next)."""
    drainer = rt.runtime().drainer
    report = DrainReport("drained")
    while report.applied < 1 and drainer.step(ns, core, 1, report):
        pass
    return report.__dict__
