"""Celery tasks: the drain that applies queued updates, and the background jobs of beat.

Tasks take only names and numbers (namespace, core, event id, a limit), never arrays: the events
themselves wait in Redis (:mod:`workers.weight_store`). Every task re-reads the world it acts on,
so a redelivered or duplicated task is harmless.

- ``kg.drain(ns, core)``: apply a state's pending events in micro-batches (:mod:`workers.drain`).
- ``kg.sweep``: publish a drain for every queue that has events but no drain (lost trigger).
- ``kg.train_routers``: router batch training from outcomes recorded since the last run.
- ``kg.replay_routers``: router training on a sample of older outcomes (experience replay).
- ``kg.consolidate``: Fisher anchor of each router from recent outcomes, and a snapshot of every
  state (kept apart from the rolling history, for ``kg state rollback``).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import redis
from celery import Task
from billiard.exceptions import TimeLimitExceeded
from celery.exceptions import Reject
from celery.signals import (beat_embedded_init, beat_init, worker_process_init, worker_process_shutdown,
                            worker_ready, worker_shutdown)

from workers import runtime as rt
from workers.app import SETTINGS, app
from workers.cores import ANCHOR_MAX, REPLAY_MAX, TRAIN_MAX
from workers.errors import StateCorrupt
from workers.events import event_bytes
from workers.store_keys import StateKeys
from workers.store_record import now_ms
from workers.weight_store import WeightStore

log = logging.getLogger(__name__)

ATTEMPTS_PREFIX = "kg:attempts:"
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class KgTask(Task):
    """Late ack, requeue on a lost worker, auto-retry of transient Redis errors, attempt cap.

    ``before_start`` counts the starts of one delivery (task id and retry number): a task whose
    process keeps dying is redelivered with the same pair, and after ``max_attempts`` starts it is
    rejected and recorded in ``kg:w:dead`` instead of looping forever.
    """

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT
    retry_backoff = 1
    retry_backoff_max = max(1, int(SETTINGS.workers.visibility_timeout_s // 4))
    retry_jitter = True
    max_retries = 8
    attempt_limit = SETTINGS.workers.max_attempts

    def before_start(self, task_id: str, args: tuple, kwargs: dict) -> None:
        store = rt.runtime().store
        key = f"{ATTEMPTS_PREFIX}{task_id}:{self.request.retries}"
        pipe = store.r.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, int(SETTINGS.workers.visibility_timeout_s) * 4)
        attempts = int(pipe.execute()[0])
        if attempts > self.attempt_limit:
            store.dead_letter({"task": self.name, "task_id": task_id, "args": list(args),
                               "attempts": attempts - 1, "at_ms": now_ms(),
                               "reason": "the task's process died on every attempt"})
            self.on_give_up(store, args)
            log.error("task %s[%s] gave up after %d attempts", self.name, task_id, attempts - 1)
            raise Reject(f"gave up after {attempts - 1} attempts", requeue=False)

    def on_give_up(self, store: WeightStore, args: tuple) -> None:
        """Hook for a task that was stopped by the attempt cap."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: object) -> None:
        """A hard time limit (also how the pool may report a process that died unseen) is
        acknowledged as a failure, not redelivered: record it beside the attempt-cap records."""
        if isinstance(exc, TimeLimitExceeded):
            try:
                store = rt.runtime().store
                # every start of this delivery counts (earlier ones may have died and been noticed)
                retries = getattr(self.request, "retries", 0) or 0
                attempts = int(store.r.get(f"{ATTEMPTS_PREFIX}{task_id}:{retries}") or 1)
                store.dead_letter({
                    "task": self.name, "task_id": task_id, "args": list(args), "attempts": attempts,
                    "at_ms": now_ms(), "reason": "hard time limit exceeded, or the process died unseen"})
            except redis.RedisError:
                log.exception("could not record the timeout of %s[%s]", self.name, task_id)


class DrainTask(KgTask):
    # the drain isolates a crashing event itself (one event at a time, max_attempts each), so it
    # needs more starts per delivery than other tasks before the generic cap applies
    attempt_limit = (SETTINGS.workers.max_attempts + 1) * 4

    def on_give_up(self, store: WeightStore, args: tuple) -> None:
        if len(args) >= 2:
            store.clear_flag(args[0], args[1])  # the next event or sweep triggers a fresh drain

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: object) -> None:
        """Keep the queue moving: a drain that failed (other than on a corrupt state, which waits
        for a rollback) is published again. If it died mid-batch its crash note makes the next
        drain go through that batch one event at a time, and a poisonous event is dropped after
        ``max_attempts``, so this cannot loop forever."""
        if isinstance(exc, StateCorrupt) or len(args) < 2:
            return
        log.warning("drain of %s/%s failed (%s); publishing it again", args[0], args[1], type(exc).__name__)
        try:
            drain.apply_async(args=list(args[:2]), countdown=0.5)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep of beat re-triggers later
            log.exception("could not re-publish the drain of %s/%s", args[0], args[1])


@app.task(bind=True, base=DrainTask, name="kg.drain", ignore_result=True)
def drain(self: Task, ns: str, core: str) -> dict:
    """Apply the pending events of one state (see :class:`workers.drain.Drainer`)."""
    runtime = rt.runtime()
    report = runtime.drainer.run(
        ns, core, self.request.id or "local", republish=lambda: drain.apply_async(args=[ns, core]),
    )
    return report.__dict__


def publish_drain(store: WeightStore, ns: str, core: str, force: bool = False) -> bool:
    """Trigger a drain unless one is already flagged (``force``: publish anyway)."""
    if store.raise_flag(ns, core) or force:
        drain.apply_async(args=[ns, core])
        return True
    return False


@app.task(base=KgTask, name="kg.sweep")
def sweep() -> dict:
    """Publish a drain for every queue that has events (a trigger may have been lost with a
    connection, or a drain died holding the lock). A drain that finds a live holder's lock
    returns at once; one that finds a dead holder's lock on this host takes it over."""
    store = rt.runtime().store
    published = 0
    for k in store.states():
        if store.depth(k.namespace, k.core):
            publish_drain(store, k.namespace, k.core, force=True)
            published += 1
    return {"published": published}


def _submit(store: WeightStore, ns: str, core: str, event_id: str, verb: str, body: dict) -> str:
    out = store.enqueue(ns, core, event_id, event_bytes(event_id, verb, body, False))
    if out.publish:
        drain.apply_async(args=[ns, core])
    return out.status


def _usable_outcomes(store: WeightStore, ns: str, rows: list[dict]) -> tuple[int, list[dict]]:
    """The current router version and the outcomes that fit it (dimension and targets)."""
    record = store.load(ns, "router")
    if record is None:
        return 0, []
    router = record.core()
    targets = set(router.targets)
    fit = [{"embedding": o["embedding"], "target": o["target"], "quality": o["quality"],
            "estimated_tokens": o.get("estimated_tokens")}
           for o in rows if len(o["embedding"]) == router.in_dim and o["target"] in targets]
    for s in fit:
        if s["estimated_tokens"] is None:
            del s["estimated_tokens"]
    return record.version, fit


def _routers(store: WeightStore) -> list[StateKeys]:
    return [k for k in store.states() if k.core == "router"]


@app.task(base=KgTask, name="kg.train_routers")
def train_routers() -> dict:
    """Batch training of every router from the outcomes recorded since the last run."""
    store = rt.runtime().store
    queued = {}
    for k in _routers(store):
        cursor_key = k.prefix + ":trained"
        cursor = int(store.r.get(cursor_key) or 0)
        rows = [o for o in store.outcomes(k.namespace) if o["seq"] > cursor][:TRAIN_MAX]
        if not rows:
            continue
        _, samples = _usable_outcomes(store, k.namespace, rows)
        if samples:
            eid = f"train-{rows[0]['seq']}-{rows[-1]['seq']}"
            queued[k.namespace] = _submit(store, k.namespace, "router", eid, "train_router",
                                          {"samples": samples, "epochs": 1})
        store.r.set(cursor_key, rows[-1]["seq"])
    return {"queued": queued}


@app.task(base=KgTask, name="kg.replay_routers")
def replay_routers() -> dict:
    """Experience replay: train each router on a seeded sample of its older outcomes."""
    store = rt.runtime().store
    queued = {}
    for k in _routers(store):
        version, samples = _usable_outcomes(store, k.namespace, store.outcomes(k.namespace))
        if len(samples) < 2 * REPLAY_MAX:
            continue  # too few to be worth replaying beyond what batch training saw
        pick = np.sort(np.random.default_rng(version).choice(len(samples), REPLAY_MAX, replace=False))
        eid = f"replay-v{version}"
        queued[k.namespace] = _submit(store, k.namespace, "router", eid, "train_router",
                                      {"samples": [samples[i] for i in pick], "epochs": 1})
    return {"queued": queued}


@app.task(base=KgTask, name="kg.consolidate")
def consolidate() -> dict:
    """Snapshot every state; anchor each router (EWC) with a Fisher from recent outcomes."""
    store = rt.runtime().store
    snapshots = sum(store.snapshot(k.namespace, k.core) for k in store.states())
    anchored = {}
    for k in _routers(store):
        version, samples = _usable_outcomes(store, k.namespace, store.outcomes(k.namespace, ANCHOR_MAX))
        if samples:
            anchored[k.namespace] = _submit(store, k.namespace, "router", f"anchor-v{version}",
                                            "anchor_router", {"samples": samples})
    return {"snapshots": snapshots, "anchored": anchored}


# -- process lifecycle -----------------------------------------------------------------------

_heartbeat = None


@worker_process_init.connect
def _process_init(**_: object) -> None:
    rt.reset()


@worker_process_shutdown.connect
def _process_shutdown(**_: object) -> None:
    rt.shutdown()


@worker_ready.connect
def _ready(sender: object = None, **_: object) -> None:
    """Start the heartbeat, and re-trigger every queue left with events (a restart's recovery)."""
    global _heartbeat
    from workers.heartbeat import Heartbeat

    name = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    _heartbeat = Heartbeat(SETTINGS.redis_url, name, "worker")
    _heartbeat.start()
    try:
        sweep.apply_async()
    except Exception:  # noqa: BLE001 - the beat sweep will do it
        log.exception("start-up sweep could not be published")


@worker_shutdown.connect
def _shutdown(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@beat_init.connect
@beat_embedded_init.connect
def _beat_init(sender: object = None, **_: object) -> None:
    global _heartbeat
    from kg.stack import node_name
    from workers.heartbeat import Heartbeat

    _heartbeat = Heartbeat(SETTINGS.redis_url, node_name("beat", SETTINGS.home), "beat")
    _heartbeat.start()
