"""Reads never answer from a state older than the last acknowledged update.

A reading process keeps a decoded core per state and asks Redis for the version on every read;
the GET is sent before the read computes on its cache and received after (workers.freshness), so
these tests check that an answer computed on a cache that went stale meanwhile is never returned:
neither a result nor an input error judged against the old core.
"""

from __future__ import annotations

import numpy as np

from service.root import Session


def test_a_read_in_another_process_sees_every_acknowledged_update(workers, learn_session, settings) -> None:
    ns = "fresh"
    writer = learn_session.dispatch
    workers("w1")
    assert writer({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4,
                                                    "epsilon": 0.0}})["ok"]
    rng = np.random.default_rng(5)
    x = [0.3, -0.2, 0.9, 0.1]
    with Session(settings) as reader, Session(settings) as fresh:
        read = reader.dispatch
        assert read({"verb": "route", "body": {"namespace": ns, "embedding": x}})["ok"]  # warm cache
        for i in range(30):
            acked = writer({"verb": "record_outcome", "body": {
                "namespace": ns, "target": "ab"[i % 2], "quality": float(rng.random()),
                "embedding": rng.standard_normal(4).tolist()}})
            assert acked["ok"], acked
            got = read({"verb": "route", "body": {"namespace": ns, "embedding": x}})["data"]
            assert got["version"] >= acked["data"]["version"]
            # the same answer as a process that loads the stored state now
            fresh._learning = None  # a new learning client: loads the stored state now
            assert got == fresh.dispatch({"verb": "route", "body": {"namespace": ns, "embedding": x}})["data"]


def test_input_checked_against_a_stale_cache_is_checked_again(workers, learn_session, settings) -> None:
    ns = "fresh-dims"
    writer = learn_session.dispatch
    workers("w1")
    assert writer({"verb": "init_router", "body": {"namespace": ns, "targets": ["a"], "in_dim": 4}})["ok"]
    with Session(settings) as reader:
        read = reader.dispatch
        assert read({"verb": "route", "body": {"namespace": ns, "embedding": [0.1] * 4}})["ok"]
        # re-initialised with another dimension: the reader's cached router is now stale
        assert writer({"verb": "init_router", "body": {"namespace": ns, "targets": ["a"], "in_dim": 6}})["ok"]
        six = read({"verb": "route", "body": {"namespace": ns, "embedding": [0.1] * 6}})
        assert six["ok"], six  # refused by the stale core, answered by the current one
        four = read({"verb": "route", "body": {"namespace": ns, "embedding": [0.1] * 4}})
        assert four["ok"] is False and four["error"].startswith("embedding: expected 6 values"), four
        # the same for the adapter
        assert writer({"verb": "init_instant", "body": {"namespace": ns, "targets": ["a"], "in_dim": 4}})["ok"]
        assert read({"verb": "apply_adapter", "body": {"namespace": ns, "embedding": [0.1] * 4}})["ok"]
        assert writer({"verb": "init_instant", "body": {"namespace": ns, "targets": ["a"], "in_dim": 3}})["ok"]
        out = read({"verb": "apply_adapter", "body": {"namespace": ns, "embedding": [0.1] * 3}})
        assert out["ok"] and out["data"]["version"] == 2, out
