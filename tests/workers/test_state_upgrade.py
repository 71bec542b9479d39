"""A router blob stored by the version-2 release keeps serving after the upgrade (real Redis and worker).

Reads answer from it, the next update runs on it in the worker, and the state is then stored in
the current layout: an upgrade of the service does not throw learned state away.
"""

from __future__ import annotations

import json
import pathlib

import learn
from service.root import Session
from workers.store_keys import StateKeys
from workers.store_record import Record

OLD = pathlib.Path(__file__).parents[1] / "learn" / "data"


def test_a_version_2_router_blob_serves_and_learns_on(workers, learn_session, settings) -> None:
    ns = "upgrade"
    d = learn_session.dispatch
    store = learn_session.learning.store
    old_release = workers("w1")
    assert d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 8}})["ok"]
    key = StateKeys.of(ns, "router").blob
    stored = Record.decode(store.r.get(key), ns, "router")
    old_state = (OLD / "v2-router.safetensors").read_bytes()
    assert b'"schema_version":"2"' in old_state
    store.r.set(key, Record("router", ns, stored.version, stored.updates, old_state, stored.written_ms).encode())
    old_release.stop()  # the upgrade: workers of the new release start on the stored bytes
    workers("w2")
    probe = json.loads((OLD / "v2-answers.json").read_text())["probe"]
    expected = learn.from_bytes(old_state, "router").route(probe)

    with Session(settings) as fresh:  # a process that loads the old bytes
        route = fresh.dispatch({"verb": "route", "body": {"namespace": ns, "embedding": probe}})
        assert route["ok"], route
        assert route["data"]["model"] == expected["model"]
        out = fresh.dispatch({"verb": "record_outcome", "body": {"namespace": ns, "target": "a",
                                                               "quality": 0.9, "embedding": probe}})
        assert out["ok"], out
    now = Record.decode(store.r.get(key), ns, "router")
    assert now.version > stored.version
    assert b'"schema_version":"7"' in now.state
    before = learn.from_bytes(old_state, "router").outcome_counts["a"]
    assert learn.from_bytes(now.state, "router").outcome_counts["a"] == before + 1  # learnt on the old state
