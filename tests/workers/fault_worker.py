"""The Celery app of the crash tests: the product's app and tasks, plus two faults.

Started as ``celery -A tests.workers.fault_worker worker`` (a real worker process; see
``Worker(app=FAULT_APP)``), never imported by the product:

- the ``_crash`` update (queued on an ``ewc`` state) kills the pool process applying it, so a
  drain dies mid-batch;
- the ``kg.fault`` task kills the pool process running it, every time.

Both are added to the worker's tables here, at import, before the worker forks its pool.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from workers.app import app
from workers.tasks import KgTask
from workers.verbs import UPDATES, LearningVerb

CRASH_VERB = "_crash"


def _die() -> None:
    time.sleep(0.2)  # die mid-task, after the pool has seen the task start
    os.kill(os.getpid(), signal.SIGKILL)


def _crash(core: Any, body: dict) -> tuple[Any, dict]:
    _die()
    raise AssertionError("unreachable")


@app.task(base=KgTask, name="kg.fault")
def fault() -> None:
    _die()


UPDATES[CRASH_VERB] = LearningVerb(CRASH_VERB, "ewc", None, apply=_crash)
