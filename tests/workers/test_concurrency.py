"""Two worker processes and several caller threads: every event applied exactly once.

The per-core update counts in ``health`` equal the events sent, and the stored weights equal a
one-by-one replay of the events in the order the store's log says they were applied.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from tests.workers._streams import init_requests, reference, stored_body, update_requests, wait_all_applied
from learn import to_bytes
from workers.verbs import CORE_OF_VERB

THREADS = 4
PER_THREAD = 500


def test_two_workers_many_callers_exactly_once(workers, learn_session, tmp_path) -> None:
    ns = "concurrency"
    dispatch = learn_session.dispatch
    store = learn_session.learning.store
    w1, w2 = workers("w1", KG_DRAIN_BATCH="64"), workers("w2", KG_DRAIN_BATCH="64")
    inits = {}
    for req in init_requests(ns):
        out = dispatch(req)
        assert out["ok"], out
        inits[out["data"]["event_id"]] = req
    streams = [update_requests(ns, PER_THREAD, seed=100 + t, prefix=f"t{t}-") for t in range(THREADS)]
    failures: list[dict] = []

    def caller(t: int) -> None:
        for i, req in enumerate(streams[t]):
            # half the calls wait for their result, half take a ticket
            out = dispatch(dict(req, **{"async": bool(i % 2)}))
            if not out["ok"]:
                failures.append(out)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(240)
    assert not failures, failures[:3]

    sent = Counter(CORE_OF_VERB[r["verb"]] for s in streams for r in s)
    wait_all_applied(store, ns, {c: sent[c] + (c != "ewc") for c in sent}, timeout=120)
    health = dispatch({"verb": "health", "body": {"namespace": ns}})["data"]
    assert {c: health["updates"][c] for c in sent} == dict(sent)
    assert health["queue"]["pending_events"] == 0

    by_id = {r["body"]["event_id"]: r for s in streams for r in s} | inits
    for core in sent:
        log = store.applied_log(ns, core)
        assert sorted(Counter(eid for _, eid, _, _ in log).values()) == [1] * len(log)
        assert [seq for seq, *_ in log] == list(range(1, len(log) + 1))
        ref = reference(store, ns, core, by_id)
        assert store.load(ns, core).state == to_bytes(ref.core), f"{core}: weights differ from the replay"
    # each caller's own events keep their relative order (one queue per state, FIFO)
    for s in streams:
        for core in sent:
            mine = [r["body"]["event_id"] for r in s if CORE_OF_VERB[r["verb"]] == core]
            order = [eid for _, eid, _, _ in store.applied_log(ns, core) if eid in set(mine)]
            assert order == mine
    applied = {w.name: _applied(w.log.read_text()) for w in (w1, w2)}
    print(f"events applied per worker: {applied}")
    assert all(n > 0 for n in applied.values()), "both workers took part"


def _applied(log_text: str) -> int:
    return sum(int(n) for n in re.findall(r"'applied': (\d+)", log_text))


def test_stored_body_matches_what_dispatch_queues(learn_session) -> None:
    """The replay reference rebuilds bodies the way the verbs do (guards the test helper)."""
    req = update_requests("x", 10, seed=1)[0]
    body = stored_body(req)
    assert set(body) == {"embedding", "model", "payload", "now_ms"}
    assert body["embedding"].tolist() == req["body"]["embedding"]  # exact through the queue
