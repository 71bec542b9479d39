"""The router's EWC anchor queued at a detected boundary (:mod:`workers.boundary`): through the
service with a real worker, and the drain in this process with the setting off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bench._procs import wait_for
from learn.limits import ANCHOR_MAX
from workers.boundary import queue_anchors
from workers.cores import apply_batch
from workers.drain import Drainer
from workers.events import Event, event_bytes
from workers.verbs import UPDATES
from workers.weight_store import WeightStore

DIM, N_A, N_B = 32, 400, 150  # 8 windows of 50 inputs on A, then 3 on a shifted B


def inputs(shift: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(DIM) + (shift if i >= N_A else 0.0) for i in range(N_A + N_B)]


def outcome(i: int, x: np.ndarray) -> dict:
    return {"target": "ab"[i % 2], "quality": float(x[0] > 0), "embedding": x.tolist()}


def anchors(store: WeightStore, ns: str) -> list[tuple[int, str, int, bool]]:
    return [row for row in store.applied_log(ns, "router") if row[1].startswith("anchor-")]


def test_a_shift_queues_one_anchor_and_no_shift_none(workers, learn_session) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1", KG_ANCHOR_ON_BOUNDARY="1")  # no beat: every anchor below comes from a boundary
    for ns, shift in (("shift", 1.0), ("steady", 0.0)):
        assert d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": DIM}})["ok"]
        for i, x in enumerate(inputs(shift)):
            assert d({"verb": "record_outcome", "async": True, "body": {"namespace": ns, **outcome(i, x)}})["ok"]
    for ns in ("shift", "steady"):
        wait_for(lambda ns=ns: store.depth(ns, "router") == 0
                 and len(store.applied_log(ns, "router")) >= 1 + N_A + N_B, 60, f"{ns}: the outcomes applied")

    router = store.load("shift", "router").core()
    assert router.boundaries == 1
    fired_seq = 2 + N_A + 49  # init is seq 1; the last outcome of the first window that holds B
    [(seq, eid, _, ok)] = anchors(store, "shift")
    assert (eid, ok) == (f"anchor-s{fired_seq}-b1", True) and seq > fired_seq
    result = store.result("shift", "router", f"anchor-s{fired_seq}-b1")
    assert result["ok"] and result["data"]["samples"] == ANCHOR_MAX
    assert router.to_state().scalars["anchored"]
    # the same boundary cannot anchor twice: its id is taken
    again = f"anchor-s{fired_seq}-b1"
    assert store.enqueue("shift", "router", again, event_bytes(again, "anchor_router", {"samples": []}, False),
                         trigger=False).status == "duplicate"

    steady = store.load("steady", "router").core()
    assert steady.boundaries == 0 and anchors(store, "steady") == []
    assert not steady.to_state().scalars["anchored"]


def test_off_by_default_and_a_retried_batch_queues_nothing_more(redis_server, settings) -> None:
    events = [Event(1, "init", "init_router", {"in_dim": DIM, "targets": ["a", "b"]})]
    events += [Event(i + 2, f"o{i}", "record_outcome", outcome(i, x)) for i, x in enumerate(inputs(1.0))]

    assert not settings.workers.anchor_on_boundary
    off = WeightStore(redis_server.client(), settings.workers)
    for eid, verb, body in ((e.id, e.verb, e.body) for e in events):
        assert off.enqueue("off", "router", eid, event_bytes(eid, verb, body, False)).status == "accepted"
    assert Drainer(off).run("off", "router", "task-1").applied == len(events)
    assert off.load("off", "router").core().boundaries == 1 and anchors(off, "off") == []

    # a batch applied again after a crash before its commit: the anchor it queued is not queued twice
    on = WeightStore(redis_server.client(), replace(settings.workers, anchor_on_boundary=True))
    batch = apply_batch(UPDATES, "router", None, 0, events)
    first = queue_anchors(on, "on", "router", batch.core, events, batch.results, batch.outcomes)
    retry = apply_batch(UPDATES, "router", None, 0, events)
    assert first == [f"anchor-s{2 + N_A + 49}-b1"]
    assert queue_anchors(on, "on", "router", retry.core, events, retry.results, retry.outcomes) == []
    assert on.depth("on", "router") == 1
