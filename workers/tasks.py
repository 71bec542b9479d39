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
- ``kg.consolidate_adapters``: a BaseLoRA consolidation (``consolidate_adapter``) of each instant
  core with ``KG_BASE_MIN_UPDATES`` feedback updates since its last one.


- ``kg.cluster_patterns``: cluster each pattern bank that holds new trajectories.

:func:`register` puts them on an app built by :func:`workers.app.make_app`; their limits come
from that app's settings (``app.kg_settings``), and tasks publish drains through their own app.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import redis
from celery import Celery, Task
from billiard.exceptions import TimeLimitExceeded
from celery.exceptions import Reject
from celery.signals import (beat_embedded_init, beat_init, worker_process_init, worker_process_shutdown,
                            worker_ready, worker_shutdown)

from workers import runtime as rt
from learn.limits import ANCHOR_MAX, REPLAY_MAX, TRAIN_MAX
from workers.samples import router_samples
from workers.errors import StateCorrupt
from workers.events import event_bytes
from workers.store_keys import StateKeys
from workers.store_record import now_ms
from workers.weight_store import WeightStore

log = logging.getLogger(__name__)

ATTEMPTS_PREFIX = "kg:attempts:"
DRAIN = "kg.drain"
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
    retry_backoff_max = 150  # register(): a quarter of the visibility timeout
    retry_jitter = True
    max_retries = 8

    @property
    def attempt_limit(self) -> int:
        return self.app.kg_settings.workers.max_attempts

    def before_start(self, task_id: str, args: tuple, kwargs: dict) -> None:
        store = rt.runtime(self.app.kg_settings).store
        key = f"{ATTEMPTS_PREFIX}{task_id}:{self.request.retries}"
        pipe = store.r.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, int(self.app.kg_settings.workers.visibility_timeout_s) * 4)
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
                store = rt.runtime(self.app.kg_settings).store
                # every start of this delivery counts (earlier ones may have died and been noticed)
                retries = getattr(self.request, "retries", 0) or 0
                attempts = int(store.r.get(f"{ATTEMPTS_PREFIX}{task_id}:{retries}") or 1)
                store.dead_letter({
                    "task": self.name, "task_id": task_id, "args": list(args), "attempts": attempts,
                    "at_ms": now_ms(), "reason": "hard time limit exceeded, or the process died unseen"})
            except redis.RedisError:
                log.exception("could not record the timeout of %s[%s]", self.name, task_id)


class DrainTask(KgTask):
    @property
    def attempt_limit(self) -> int:
        # the drain isolates a crashing event itself (one event at a time, max_attempts each), so
        # it needs more starts per delivery than other tasks before the generic cap applies
        return (self.app.kg_settings.workers.max_attempts + 1) * 4

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
            self.app.send_task(DRAIN, args=list(args[:2]), countdown=0.5)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep of beat re-triggers later
            log.exception("could not re-publish the drain of %s/%s", args[0], args[1])


def drain(self: Task, ns: str, core: str) -> dict:
    """Apply the pending events of one state (see :class:`workers.drain.Drainer`)."""
    runtime = rt.runtime(self.app.kg_settings)
    report = runtime.drainer.run(
        ns, core, self.request.id or "local",
        republish=lambda: self.app.send_task(DRAIN, args=[ns, core]),
    )
    return report.__dict__


def sweep(self: Task) -> dict:
    """Publish a drain for every queue that has events (a trigger may have been lost with a
    connection, or a drain died holding the lock). A drain that finds a live holder's lock
    returns at once; one that finds a dead holder's lock on this host takes it over."""
    store = rt.runtime(self.app.kg_settings).store
    published = 0
    for k in store.states():
        if store.depth(k.namespace, k.core):
            store.raise_flag(k.namespace, k.core)
            self.app.send_task(DRAIN, args=[k.namespace, k.core])
            published += 1
    return {"published": published}


def _submit(app: Celery, store: WeightStore, ns: str, core: str, event_id: str, verb: str, body: dict) -> str:
    out = store.enqueue(ns, core, event_id, event_bytes(event_id, verb, body, False))
    if out.publish:
        app.send_task(DRAIN, args=[ns, core])
    return out.status


def _usable_outcomes(store: WeightStore, ns: str, rows: list[dict]) -> tuple[int, list[dict]]:
    """The current router version and the outcomes that fit it (dimension and targets)."""
    record = store.load(ns, "router")
    if record is None:
        return 0, []
    router = record.core()
    return record.version, router_samples(rows, router.in_dim, set(router.targets))


def _routers(store: WeightStore) -> list[StateKeys]:
    return [k for k in store.states() if k.core == "router"]


def train_routers(self: Task) -> dict:
    """Batch training of every router from the outcomes recorded since the last run."""
    store = rt.runtime(self.app.kg_settings).store
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
            queued[k.namespace] = _submit(self.app, store, k.namespace, "router", eid, "train_router",
                                          {"samples": samples, "epochs": 1})
        store.r.set(cursor_key, rows[-1]["seq"])
    return {"queued": queued}


def replay_routers(self: Task) -> dict:
    """Experience replay: train each router on a seeded sample of its older outcomes."""
    store = rt.runtime(self.app.kg_settings).store
    queued = {}
    for k in _routers(store):
        version, samples = _usable_outcomes(store, k.namespace, store.outcomes(k.namespace))
        if len(samples) < 2 * REPLAY_MAX:
            continue  # too few to be worth replaying beyond what batch training saw
        pick = np.sort(np.random.default_rng(version).choice(len(samples), REPLAY_MAX, replace=False))
        eid = f"replay-v{version}"
        queued[k.namespace] = _submit(self.app, store, k.namespace, "router", eid, "train_router",
                                      {"samples": [samples[i] for i in pick], "epochs": 1})
    return {"queued": queued}


def consolidate(self: Task) -> dict:
    """Snapshot every state; anchor each router (EWC) with a Fisher from recent outcomes."""
    store = rt.runtime(self.app.kg_settings).store
    snapshots = sum(store.snapshot(k.namespace, k.core) for k in store.states())
    anchored = {}
    for k in _routers(store):
        version, samples = _usable_outcomes(store, k.namespace, store.outcomes(k.namespace, ANCHOR_MAX))
        if samples:
            anchored[k.namespace] = _submit(self.app, store, k.namespace, "router", f"anchor-v{version}",
                                            "anchor_router", {"samples": samples})
    return {"snapshots": snapshots, "anchored": anchored}


def _current_cores(store: WeightStore, kind: str) -> Iterator[tuple[str, int, Any]]:
    """``(namespace, version, core)`` of every ``kind`` state; a corrupt one is logged and skipped
    (it waits for a rollback; the beat queues nothing for it)."""
    for k in store.states():
        if k.core != kind:
            continue
        record = store.load(k.namespace, kind)
        if record is None:
            continue
        try:
            yield k.namespace, record.version, record.core()
        except StateCorrupt:
            log.warning("%s state of %s is corrupt: nothing queued for it", kind, k.namespace)


def consolidate_adapters(self: Task) -> dict:
    """Queue ``consolidate_adapter`` for every instant core with enough new feedback updates and
    buffered inputs. The event id is the state's version (``base-v{version}``), so beats that find
    the same state queue it once; the event itself re-checks the count when it is applied."""
    store = rt.runtime(self.app.kg_settings).store
    min_updates = self.app.kg_settings.workers.base_min_updates
    queued = {}
    for ns, version, core in _current_cores(store, "instant"):
        if core.pending_updates >= min_updates and core.replay_len >= core.base_min_inputs:
            queued[ns] = _submit(self.app, store, ns, "instant", f"base-v{version}", "consolidate_adapter",
                                 {"min_new_updates": min_updates})
    return {"queued": queued}


def cluster_patterns(self: Task) -> dict:
    """Queue ``cluster_patterns`` for every pattern bank with trajectories recorded since its last
    clustering, once per state version (event id ``cluster-v<version>``: a second run before it is
    applied is a duplicate, and after it the bank holds none until new ones come)."""
    store = rt.runtime(self.app.kg_settings).store
    queued = {}
    for ns, version, core in _current_cores(store, "patterns"):
        if core.buffered:
            queued[ns] = _submit(self.app, store, ns, "patterns", f"cluster-v{version}", "cluster_patterns", {})
    return {"queued": queued}


# -- registration and process lifecycle ---------------------------------------------------------


def register(app: Celery) -> None:
    """Put the tasks on ``app`` (made by :func:`workers.app.make_app`, which holds the settings),
    and connect the process lifecycle handlers (once per process)."""
    ws = app.kg_settings.workers
    # shared=False: Celery would otherwise add each task to every app finalized later in this process
    options = {"retry_backoff_max": max(1, int(ws.visibility_timeout_s // 4)), "shared": False}
    app.task(bind=True, base=DrainTask, name=DRAIN, ignore_result=True, **options)(drain)
    for fn in (sweep, train_routers, replay_routers, consolidate, consolidate_adapters, cluster_patterns):
        app.task(bind=True, base=KgTask, name=f"kg.{fn.__name__}", **options)(fn)
    for signal_, handler in ((worker_process_init, _process_init), (worker_process_shutdown, _process_shutdown),
                             (worker_ready, _ready), (worker_shutdown, _shutdown),
                             (beat_init, _beat_init), (beat_embedded_init, _beat_init)):
        signal_.connect(handler, weak=False, dispatch_uid=f"kg.{signal_.name}")


_heartbeat = None


def _process_init(**_: object) -> None:
    rt.reset()


def _process_shutdown(**_: object) -> None:
    rt.shutdown()


def _ready(sender: object = None, **_: object) -> None:
    """Start the heartbeat, and re-trigger every queue left with events (a restart's recovery)."""
    global _heartbeat
    from workers.heartbeat import Heartbeat

    app = sender.app
    name = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    _heartbeat = Heartbeat(app.kg_settings.redis_url, name, "worker")
    _heartbeat.start()
    try:
        app.send_task("kg.sweep")
    except Exception:  # noqa: BLE001 - the beat sweep will do it
        log.exception("start-up sweep could not be published")


def _shutdown(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


def _beat_init(sender: object = None, **_: object) -> None:
    global _heartbeat
    from workers.heartbeat import Heartbeat, node_name

    settings = sender.app.kg_settings
    _heartbeat = Heartbeat(settings.redis_url, node_name("beat", settings.home), "beat")
    _heartbeat.start()
