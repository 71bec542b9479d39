"""Restart: kill -9 the worker mid-stream, restart Redis from its AOF, start a fresh worker.

Every acknowledged event (the dispatch answered with a ticket) is in the state exactly once, and
the reads answer bit-identically to an uninterrupted, one-by-one application of the same events.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

from tests.workers._streams import (expected_answers, init_requests, probes, read_answers, reference,
                      update_requests, updates, wait_all_applied)
from bench._procs import VISIBILITY_S
from workers.app import publisher
from workers.verbs import CORE_OF_VERB
from workers.store_keys import StateKeys


def test_kill_worker_restart_redis_every_acked_event_once(redis_server, workers, learn_session) -> None:
    ns = "restart"
    dispatch = learn_session.dispatch
    store = learn_session.learning.store
    w1 = workers("w1", KG_DRAIN_BATCH="8")
    for req in init_requests(ns):
        assert dispatch(req)["ok"]
    requests = update_requests(ns, 320, seed=11)
    by_id = {r["body"]["event_id"]: r for r in requests}
    acked: list[str] = []
    killed = threading.Event()

    def submit() -> None:
        for i, req in enumerate(requests):
            out = dispatch(dict(req, **{"async": True}))
            if out["ok"]:
                acked.append(req["body"]["event_id"])
            if i == 110:
                killed.wait(10)  # the worker dies here, mid-stream
            time.sleep(0.001)

    thread = threading.Thread(target=submit)
    thread.start()
    # kill -9 the whole worker (main process and pool child) while it runs a drain task: freeze
    # it, and kill it if a task is in flight (not yet acknowledged), else let it run a little more
    client = redis_server.client()
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "no drain task was ever caught in flight"
        if len(acked) >= 100:
            w1.signal(signal.SIGSTOP)
            if client.hlen("unacked"):
                break
            w1.signal(signal.SIGCONT)
        time.sleep(0.001)
    applied_before = {c: updates(store, ns, c) for c in ("instant", "ewc", "router")}
    w1.kill9()
    killed.set()
    thread.join(60)
    assert len(acked) == len(requests), "every request was acknowledged with a ticket"
    assert sum(store.depth(ns, c) for c in ("instant", "ewc", "router")) > 0, "the kill left work queued"

    # SHUTDOWN (fsync) and restart Redis from its append-only file: the state is identical
    keys = [StateKeys.of(ns, c) for c in ("instant", "ewc", "router")]
    before = {k.core: (client.get(k.blob), client.get(k.ver), client.llen(k.pending)) for k in keys}
    unacked_before = client.hlen("unacked")
    redis_server.shutdown()
    redis_server.start()
    client = redis_server.client()
    after = {k.core: (client.get(k.blob), client.get(k.ver), client.llen(k.pending)) for k in keys}
    assert after == before
    assert client.hlen("unacked") == unacked_before >= 1

    # a fresh worker after the visibility timeout: redelivered and re-swept drains finish the job
    time.sleep(VISIBILITY_S + 0.5)
    workers("w2")
    per_core = Counter(CORE_OF_VERB[r["verb"]] for r in requests)
    wait_all_applied(store, ns, {c: per_core[c] + (c != "ewc") for c in per_core}, timeout=60)

    cores = {}
    for core in ("instant", "ewc", "router"):
        log = store.applied_log(ns, core)
        ids = [eid for _, eid, _, _ in log if eid in by_id]
        assert Counter(ids) == Counter(e for e in acked if CORE_OF_VERB[by_id[e]["verb"]] == core)
        assert all(n == 1 for n in Counter(ids).values()), "an event was applied twice"
        assert ids == [e for e in acked if CORE_OF_VERB[by_id[e]["verb"]] == core], "arrival order kept"
        assert all(ok for *_, ok in log)
        ref = reference(store, ns, core, {**by_id, **{eid: req for eid, req in _inits(store, ns, core)}})
        record = store.load(ns, core)
        assert record.state == _bytes(ref.core), f"{core}: stored state differs from the one-by-one replay"
        assert record.updates == per_core[core] == ref.updates
        cores[core] = ref.core
    health = dispatch({"verb": "health", "body": {"namespace": ns}})["data"]
    assert {c: health["updates"][c] for c in per_core} == dict(per_core)
    assert sum(applied_before.values()) < len(requests), "the kill happened mid-stream"
    print(f"applied before the kill: {applied_before}; unacked drain messages: {unacked_before}")

    xs = probes(3)
    assert read_answers(dispatch, ns, xs) == expected_answers(cores, xs)


def _inits(store, ns: str, core: str):
    """The init events (server-assigned ids) mapped to their requests."""
    for _, eid, _, _ in store.applied_log(ns, core):
        for req in init_requests(ns):
            if CORE_OF_VERB[req["verb"]] == core and store.result(ns, core, eid)["verb"] == req["verb"]:
                yield eid, req


def _bytes(core) -> bytes:
    from learn import to_bytes

    return to_bytes(core)


def test_kill9_redis_under_load_keeps_every_acknowledged_event(redis_server, workers, learn_session) -> None:
    """RELIABILITY 5: kill -9 redis-server (AOF everysec, OS up) while events stream in; after a
    restart every acknowledged event is applied exactly once and no queued task is lost."""
    ns = "redis-kill"
    dispatch = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1", KG_DRAIN_BATCH="16")
    for req in init_requests(ns):
        assert dispatch(req)["ok"]
    requests = update_requests(ns, 400, seed=5)
    by_id = {r["body"]["event_id"]: r for r in requests}
    acked: list[str] = []
    refused = 0
    for i, req in enumerate(requests):
        if i == 200:
            redis_server.kill9()
            redis_server.start()  # same port and directory: loads the AOF
        out = dispatch(dict(req, **{"async": True}))
        if out["ok"]:
            acked.append(req["body"]["event_id"])
        else:
            refused += 1
            assert out["error"].startswith("redis:"), out
    assert len(acked) >= 200
    per_core = Counter(CORE_OF_VERB[by_id[e]["verb"]] for e in acked)
    # the drain that the kill interrupted is retried by the worker; a sweep (beat's job) covers
    # a trigger lost with the connection
    publisher(learn_session.settings).send_task("kg.sweep")
    wait_all_applied(store, ns, {c: per_core[c] + (c != "ewc") for c in per_core}, timeout=90)
    for core in per_core:
        ids = [eid for _, eid, _, _ in store.applied_log(ns, core) if eid in by_id]
        assert ids == [e for e in acked if CORE_OF_VERB[by_id[e]["verb"]] == core]
        assert store.load(ns, core).updates == per_core[core]
    print(f"{len(acked)} acknowledged, {refused} refused while Redis was down")
