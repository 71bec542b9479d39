"""Processes that die: a poison event, a task that always kills its process, a warm shutdown.

The faults are injected by the test worker app ``tests/workers/fault_worker.py`` (``FAULT_APP``),
not by the product."""

from __future__ import annotations

import time

import numpy as np

from bench._procs import wait_for

from tests.workers._apps import FAULT_APP
from workers.app import publisher
from workers.events import event_bytes
from workers.store_keys import StateKeys
from workers.weight_store import WeightStore


def _losses(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"l{i}", event_bytes(f"l{i}", "record_loss", {"loss": float(i % 5)}, False))
            for i in range(start, start + n)]


def _enqueue(store: WeightStore, ns: str, core: str, items: list[tuple[str, bytes]]) -> None:
    for event_id, payload in items:
        assert store.enqueue(ns, core, event_id, payload).status == "accepted"


def test_poison_event_is_isolated_and_dead_lettered(workers, learn_session, settings) -> None:
    """RELIABILITY 1 and 3: a pool child SIGKILLed mid-batch is redelivered; the events before
    and after the poison are applied exactly once, the poison is stopped after N attempts."""
    store = learn_session.learning.store
    w = workers("w1", app=FAULT_APP)
    ns = "poison"
    items = _losses(20) + [("boom", event_bytes("boom", "_crash", {}, False))] + _losses(20, 20)
    _enqueue(store, ns, "ewc", items)
    publisher(settings).send_task("kg.drain", args=[ns, "ewc"])
    k = StateKeys.of(ns, "ewc")
    wait_for(lambda: int(store.r.get(k.done) or 0) == 41, 90, "all 41 events consumed", every=0.2)

    core = store.load(ns, "ewc").core()
    assert core.losses_seen == 40
    log = store.applied_log(ns, "ewc")
    assert [seq for seq, *_ in log] == list(range(1, 42))
    assert [eid for _, eid, _, ok in log if not ok] == ["boom"]
    result = store.result(ns, "ewc", "boom")
    attempts = settings.workers.max_attempts
    assert result["ok"] is False and f"crashed its worker process {attempts} times" in result["error"]
    dead = [d for d in store.dead_letters() if d.get("event_id") == "boom"]
    assert len(dead) == 1 and dead[0]["attempts"] == attempts
    assert all(store.result(ns, "ewc", f"l{i}")["ok"] for i in range(40))
    assert w.proc.poll() is None, "the worker survives its pool children"
    crashes = w.log.read_text().count("exited with 'signal 9 (SIGKILL)'")
    assert crashes == 1 + attempts, f"one batch crash and {attempts} single attempts, saw {crashes}"
    assert store.depth(ns, "ewc") == 0 and store.error(ns, "ewc") is None


def test_task_that_always_kills_its_process_is_stopped(workers, learn_session, settings) -> None:
    """RELIABILITY 3 for any task: after at most N deaths it is stopped, with a record.

    The pool notices most deaths at once (WorkerLostError: the task is redelivered and counted;
    the start after the N-th death is rejected). A death it only notices at the hard time limit
    ends that delivery as a timeout (acknowledged, not redelivered), also recorded.
    """
    store = learn_session.learning.store
    w = workers("w1", app=FAULT_APP)
    result = publisher(settings).send_task("kg.fault")
    dead = wait_for(lambda: [d for d in store.dead_letters() if d.get("task_id") == result.id], 60,
                    "the crashing task to be given up", every=0.2)
    assert dead[0]["task"] == "kg.fault" and 1 <= dead[0]["attempts"] <= settings.workers.max_attempts
    wait_for(lambda: store.r.llen("kg") == 0 and store.r.hlen("unacked") == 0, 20, "the queue to empty")
    def deaths() -> int:
        return w.log.read_text().count("exited with 'signal 9 (SIGKILL)'")

    # A death the pool notices only at the hard time limit is logged as a timeout, not as
    # SIGKILL, so the log may show fewer deaths than attempts, never more.
    wait_for(lambda: deaths() >= 1, 60, "the pool to report a death")
    time.sleep(2)
    seen = deaths()
    time.sleep(2)
    assert deaths() == seen <= dead[0]["attempts"], "no start after the record"
    assert w.proc.poll() is None


def test_warm_shutdown_mid_drain_finishes_and_acks_once(workers, learn_session, settings) -> None:
    """RELIABILITY 4: SIGTERM while a drain runs; it completes, the rest is picked up once."""
    dispatch = learn_session.dispatch
    store = learn_session.learning.store
    ns = "sigterm"
    w1 = workers("w1", KG_DRAIN_BATCH="16")
    assert dispatch({"verb": "init_instant", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 384}})["ok"]
    rng = np.random.default_rng(0)
    n = 3000
    items = [(f"f{i}", event_bytes(f"f{i}", "feedback", {"embedding": rng.standard_normal(384).tolist(),
                                                        "model": "ab"[i % 2], "payload": {"quality": 0.9},
                                                        "now_ms": i}, False)) for i in range(n)]
    _enqueue(store, ns, "instant", items)
    publisher(settings).send_task("kg.drain", args=[ns, "instant"])
    wait_for(lambda: store.r.hlen("unacked") > 0 and store.load(ns, "instant").updates > 100, 30, "a drain in flight")
    w1.stop()
    assert w1.proc.returncode == 0
    assert "Warm shutdown" in w1.log.read_text()
    workers("w2")
    k = StateKeys.of(ns, "instant")
    wait_for(lambda: int(store.r.get(k.done) or 0) == n + 1, 120, "every event applied", every=0.2)
    ids = [eid for _, eid, _, _ in store.applied_log(ns, "instant")][1:]
    assert ids == [f"f{i}" for i in range(n)]
    assert store.load(ns, "instant").updates == n
    time.sleep(0.2)
    assert store.r.hlen("unacked") == 0
