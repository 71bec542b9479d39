"""``feedback_batch`` through ``Session.dispatch``: in order, once per event id, equal to one by one."""

from __future__ import annotations

import numpy as np

from tests.workers._streams import reference, updates, wait_all_applied
from learn import to_bytes
from workers.store_keys import StateKeys

NS = "batch"
DIM = 8


def events(n: int, seed: int, start: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"embedding": rng.standard_normal(DIM).tolist(), "model": "abc"[i % 3],
             "payload": {"quality": float(rng.random())}, "now_ms": i, "event_id": f"b{i}"}
            for i in range(start, start + n)]


def test_feedback_batch_is_applied_in_order_once_and_equals_one_by_one(workers, learn_session) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1", KG_DRAIN_BATCH="64")  # a call's events span several micro-batches
    init = {"verb": "init_instant", "body": {"namespace": NS, "targets": ["a", "b", "c"], "in_dim": DIM,
                                             "event_id": "init"}}
    assert d(init)["ok"]
    evs = events(300, seed=3)

    out = d({"verb": "feedback_batch", "body": {"namespace": NS, "events": evs[:200]}})
    assert out["ok"], out
    data = out["data"]
    assert (data["events"], data["applied"], data["duplicates"], data["failed"]) == (200, 200, 0, [])
    assert data["event_ids"] == [e["event_id"] for e in evs[:200]]
    assert data["updates"] == updates(store, NS, "instant") == 200
    assert data["version"] == store.version(NS, "instant")

    # overlapping ids (a retried call), async: the first 100 take no effect again
    queued = d({"verb": "feedback_batch", "async": True, "body": {"namespace": NS, "events": evs[100:]}})
    assert queued["ok"], queued
    assert queued["data"]["duplicates"] == 100 and queued["data"]["status"] == "queued"
    assert len(queued["data"]["tickets"]) == 200
    wait_all_applied(store, NS, {"instant": 301}, timeout=60)
    polled = d({"verb": "poll", "body": {"ticket": queued["data"]["tickets"][-1]}})["data"]
    assert polled["status"] == "applied" and polled["data"]["updates"] == 300

    log = store.applied_log(NS, "instant")
    assert [eid for _, eid, _, _ in log] == ["init"] + [e["event_id"] for e in evs]
    # the stored adapter equals applying the same events one at a time as single feedback requests
    by_id = {e["event_id"]: {"verb": "feedback", "body": dict(e, namespace=NS)} for e in evs}
    ref = reference(store, NS, "instant", by_id | {"init": init})
    assert store.load(NS, "instant").state == to_bytes(ref.core)
    assert ref.updates == 300


def test_a_rejected_feedback_batch_queues_nothing(workers, learn_session) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1")
    assert d({"verb": "init_instant", "body": {"namespace": NS, "targets": ["a", "b", "c"], "in_dim": DIM}})["ok"]
    k = StateKeys.of(NS, "instant")
    before = (store.r.get(k.blob), store.version(NS, "instant"), store.r.get(k.seq))
    bad = events(50, seed=4)
    bad[37]["model"] = "nobody"
    out = d({"verb": "feedback_batch", "body": {"namespace": NS, "events": bad}})
    assert out["ok"] is False and out["error"].startswith("events.37.model:"), out
    assert (store.r.get(k.blob), store.version(NS, "instant"), store.r.get(k.seq)) == before
    assert store.result(NS, "instant", "b0") is None  # no event id was taken
