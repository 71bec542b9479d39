"""Bad input on every verb: ok false, an error that names the field, and no stored state moved."""

from __future__ import annotations

import json

import pytest

from tests.workers._streams import every_core_requests

from service.root import VERBS
from workers.store_keys import KINDS, StateKeys

NS = "bad"
X4 = [0.1, 0.2, 0.3, 0.4]
NAN = float("nan")
FB = {"embedding": X4, "model": "a", "payload": {"quality": 0.9}, "now_ms": 0}
TJ = {"embedding": X4, "quality": 0.5, "steps": [{"embedding": X4, "target": "b"}]}

CASES: list[tuple[str, dict, str]] = [
    ("init_instant", {"targets": []}, "targets"),
    ("init_instant", {"targets": ["a", "a"]}, "targets"),
    ("init_instant", {"targets": ["a"], "in_dim": 0}, "in_dim"),
    ("init_instant", {"targets": ["a"], "in_dim": "4"}, "in_dim"),
    ("init_instant", {"targets": ["a"], "extra": 1}, "extra"),
    ("init_instant", {"targets": ["a"], "namespace": ""}, "namespace"),
    ("feedback", {"embedding": X4[:3], "model": "a", "payload": {"quality": 0.9}, "now_ms": 0}, "embedding"),
    ("feedback", {"embedding": [NAN, 0, 0, 0], "model": "a", "payload": {"quality": 0.9}, "now_ms": 0}, "embedding.0"),
    ("feedback", {"embedding": X4, "model": "zz", "payload": {"quality": 0.9}, "now_ms": 0}, "model"),
    ("feedback", {"embedding": X4, "model": "a", "payload": {"quality": 1.5}, "now_ms": 0}, "payload.quality"),
    ("feedback", {"embedding": X4, "model": "a", "payload": {"quality": "high"}, "now_ms": 0}, "payload.quality"),
    ("feedback", {"embedding": X4, "model": "a", "payload": {"quality": 0.9}}, "now_ms"),
    ("feedback", {"embedding": X4, "model": "a", "payload": {"quality": 0.9}, "now_ms": 0,
                  "event_id": "no spaces"}, "event_id"),
    ("feedback", {"embedding": X4, "model": "a", "payload": {"quality": 0.9}, "now_ms": 0,
                  "namespace": "nobody"}, "namespace"),
    ("feedback_batch", {"events": []}, "events"),
    ("feedback_batch", {"events": [FB, dict(FB, payload={"quality": 1.5})]}, "events.1.payload.quality"),
    ("feedback_batch", {"events": [FB, FB, dict(FB, embedding=X4[:3])]}, "events.2.embedding"),
    ("feedback_batch", {"events": [dict(FB, model="zz")]}, "events.0.model"),
    ("feedback_batch", {"events": [FB, dict(FB, embedding=[0.1, NAN, 0.3, 0.4])]}, "events.1.embedding.1"),
    ("feedback_batch", {"events": [dict(FB, event_id="no spaces")]}, "events.0.event_id"),
    ("feedback_batch", {"events": [dict(FB, namespace=NS)]}, "events.0.namespace"),
    ("feedback_batch", {"events": [FB], "event_id": "x"}, "event_id"),
    ("feedback_batch", {"events": [FB], "namespace": "nobody"}, "namespace"),
    ("apply_adapter", {"embedding": X4 + [0.5]}, "embedding"),
    ("apply_adapter", {"embedding": X4, "logits": [1.0]}, "logits"),
    ("apply_adapter", {"embedding": ["a", 1, 2, 3]}, "embedding.0"),
    ("apply_adapter", {"embedding": X4, "parts": "yes"}, "parts"),
    ("consolidate_adapter", {"min_new_updates": -1}, "min_new_updates"),
    ("consolidate_adapter", {"min_new_updates": 1.5}, "min_new_updates"),
    ("consolidate_adapter", {"shrink": 0.5}, "shrink"),
    ("consolidate_adapter", {"namespace": "nobody"}, "namespace"),
    ("reset_adapter", {"hard": True}, "hard"),
    ("reset_adapter", {"namespace": "nobody"}, "namespace"),
    ("record_loss", {"loss": "x"}, "loss"),
    ("record_loss", {"loss": float("inf")}, "loss"),
    ("record_loss", {}, "loss"),
    ("consolidate", {"param_id": "p", "params": [1.0, 2.0], "grads": [1.0]}, "grads"),
    ("consolidate", {"param_id": "", "params": [1.0], "grads": [1.0]}, "param_id"),
    ("consolidate", {"param_id": "w", "params": [1.0, 2.0, 3.0], "grads": [1.0, 1.0, 1.0]}, "params"),
    ("ewc_penalty", {"param_id": "w", "params": [1.0]}, "params"),
    ("ewc_penalty", {"params": [1.0]}, "param_id"),
    ("init_router", {"in_dim": 4, "targets": []}, "targets"),
    ("init_router", {"in_dim": 4, "targets": ["a"], "costs": {"b": 1.0}}, "costs"),
    ("init_router", {"in_dim": 4, "targets": ["a"], "epsilon": 2}, "epsilon"),
    ("route", {"embedding": X4[:2]}, "embedding"),
    ("route", {"embedding": X4, "estimated_tokens": -1}, "estimated_tokens"),
    ("route", {"embedding": X4, "adapter_logits": [1.0]}, "adapter_logits"),
    ("record_outcome", {"target": "zz", "quality": 0.5}, "target"),
    ("record_outcome", {"target": "a", "quality": -0.1}, "quality"),
    ("record_outcome", {"target": "a", "quality": 0.5, "estimated_tokens": 10}, "embedding"),
    ("record_outcome", {"target": "a", "quality": 0.5, "embedding": X4[:1]}, "embedding"),
    ("train_router", {"epochs": 0}, "epochs"),
    ("init_attention", {"dim": 0}, "dim"),
    ("init_attention", {"dim": 8, "heads": 3}, "head_dim"),
    ("attend", {"query": [1.0] * 7, "subgraph": {"nodes": {}}, "now_ms": 0}, "query"),
    ("attend", {"query": [1.0] * 8}, "src"),
    ("attend", {"query": [1.0] * 8, "subgraph": {"nodes": {}}}, "now_ms"),
    ("attend", {"query": [1.0] * 8, "src": "alice"}, "t"),
    ("attend", {"query": [1.0] * 8, "subgraph": {"nodes": {"x": ["a"] * 8}}, "now_ms": 0}, "subgraph.nodes.x.0"),
    ("attend", {"query": [1.0] * 8, "src": "alice", "t": 0, "hops": 9}, "hops"),
    ("init_patterns", {"dim": 4, "targets": ["a"], "k": 0}, "k"),
    ("init_patterns", {"dim": 4, "targets": ["a", "a"]}, "targets"),
    ("record_trajectory", {"embedding": X4, "quality": 0.5, "steps": [{"embedding": X4, "target": "zz"}]},
     "steps.0.target"),
    ("record_trajectory", {"embedding": [0.0] * 4, "quality": 0.5}, "embedding"),
    ("record_trajectory", {"embedding": X4, "quality": "good"}, "quality"),
    ("record_trajectories", {"trajectories": [TJ, dict(TJ, embedding=X4[:2])]}, "trajectories.1.embedding"),
    ("record_trajectories", {"trajectories": [dict(TJ, namespace=NS)]}, "trajectories.0.namespace"),
    ("cluster_patterns", {"k": 3}, "k"),
    ("find_patterns", {"embedding": X4, "k": 0}, "k"),
    ("find_patterns", {"embedding": X4[:3]}, "embedding"),
    ("poll", {"ticket": "garbage"}, "ticket"),
    ("poll", {"ticket": "instant:bad:nope"}, "ticket"),
    ("upsert_node", {"name": "n", "embedding": []}, "embedding"),
    ("upsert_node", {"name": "", "embedding": [1.0]}, "name"),
    ("insert_edge", {"id": "e", "src": "a", "dst": "b", "created_at": 0}, "valid_at"),
    ("get_edge", {}, "edge_id"),
    ("history", {"edge_id": 5}, "edge_id"),
    ("query_at", {"src": "a", "t": "yesterday"}, "t"),
    ("invalidate_edge", {"edge_id": "e", "invalid_at": 0}, "expired_at"),
    ("query_at_many", {"questions": [{"src": "a", "t": 0}, {"src": "a", "t": "yesterday"}]}, "questions.1.t"),
    ("invalidate_many", {"invalidations": [{"edge_id": "e", "invalid_at": 0}]}, "invalidations.0.expired_at"),
    ("neighbourhood", {"src": "a", "t": 0, "hops": 4}, "hops"),
    ("neighbourhood_many", {"questions": [{"src": "a", "t": 0}, {"src": "", "t": 0}]}, "questions.1.src"),
    ("contradict", {"new_edge": {}, "contradicts": "e", "now_ms": 0}, "new_edge.id"),
    ("ingest", {"edges": []}, "edges"),
    ("health", {"verbose": True}, "verbose"),
]


@pytest.fixture
def ready(workers, learn_session):
    """A namespace with every core initialised and one consolidated parameter."""
    d = learn_session.dispatch
    workers("w1")
    for req in every_core_requests(NS):
        assert d(req)["ok"], req
    return learn_session


def snapshot(store) -> dict:
    return {kind: (store.r.get(StateKeys.of(NS, kind).blob), store.version(NS, kind), store.depth(NS, kind))
            for kind in KINDS}


def test_every_verb_rejects_bad_input_naming_the_field(ready) -> None:
    d = ready.dispatch
    store = ready.learning.store
    before = snapshot(store)
    assert {v for v, _, _ in CASES} == set(VERBS), "a case for every verb"
    for verb, body, field in CASES:
        body = body if "namespace" in body else dict(body, namespace=NS)
        out = d({"verb": verb, "body": body})
        assert out["ok"] is False and out["verb"] == verb, (verb, body, out)
        assert out["error"].startswith(f"{field}:"), (verb, field, out["error"])
        assert "nan" not in out["error"].lower() or field == "embedding.0"
    assert snapshot(store) == before, "a rejected request changed stored state"


def test_bad_requests_and_lines(ready) -> None:
    d = ready.dispatch
    store = ready.learning.store
    before = snapshot(store)
    cases = [
        (d(["not", "an", "object"]), "request:"),
        (d({"verb": "nope"}), "verb:"),
        (d({"body": {}}), "verb:"),
        (d({"verb": "health", "body": [1]}), "body:"),
        (d({"verb": "health", "body": {}, "extra": 1}), "extra:"),
        (d({"verb": "record_loss", "body": {"loss": 1.0, "namespace": NS}, "async": "yes"}), "async:"),
        (d({"verb": "route", "body": {"embedding": X4, "namespace": NS}, "async": True}), "async:"),
        (json.loads(ready.dispatch_line('{"verb": "record_loss", "body": {"loss": NaN, "namespace": "bad"}}')), "loss:"),
        (json.loads(ready.dispatch_line("{not json")), "request: not valid JSON"),
        (json.loads(ready.dispatch_line(json.dumps({"verb": "feedback", "body": {"embedding": [0.5] * 200_000}}))),
         "request: larger than"),
    ]
    for out, prefix in cases:
        assert out["ok"] is False and out["error"].startswith(prefix), (prefix, out)
    assert snapshot(store) == before


def test_a_retried_event_id_takes_effect_once(ready) -> None:
    d = ready.dispatch
    store = ready.learning.store
    req = {"verb": "record_loss", "body": {"namespace": NS, "loss": 0.5, "event_id": "client-42"}}
    first = d(req)
    again = d(req)
    assert first["ok"] and again["ok"]
    assert first["data"] == again["data"]
    assert [e for _, e, _, _ in store.applied_log(NS, "ewc")].count("client-42") == 1
    queued = d(dict(req, **{"async": True}))
    assert queued["data"]["status"] == "duplicate"
    assert d({"verb": "poll", "body": {"ticket": queued["data"]["ticket"]}})["data"]["status"] == "applied"


def test_bulk_submission_is_all_or_nothing_and_applies_in_order(ready) -> None:
    from bench._procs import wait_for
    from workers.verbs import submit_many

    store = ready.learning.store
    bodies = [{"embedding": [0.1 * i, 0.2, 0.3, 0.4], "model": "ab"[i % 2], "payload": {"quality": 0.9},
               "now_ms": i} for i in range(50)]
    before = snapshot(store)
    bad = bodies[:3] + [dict(bodies[3], embedding=[1.0])] + bodies[4:]
    from kg.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        submit_many(ready, NS, "feedback", bad)
    assert info.value.field == "3.embedding"
    assert snapshot(store) == before
    tickets = submit_many(ready, NS, "feedback", bodies)
    assert [t["status"] for t in tickets] == ["queued"] * 50
    wait_for(lambda: store.depth(NS, "instant") == 0 and all(
        ready.dispatch({"verb": "poll", "body": {"ticket": t["ticket"]}})["data"]["status"] == "applied"
        for t in tickets[-1:]), 30, "the bulk to be applied")
    log = [eid for _, eid, _, _ in store.applied_log(NS, "instant")]
    assert log[-50:] == [t["event_id"] for t in tickets]


def _nested(depth: int, leaf: object) -> object:
    """A value nested ``depth`` levels deep, alternating lists and objects (deeper than the JSON
    encoder's recursion limit when ``depth`` is in the thousands)."""
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


def test_deeply_nested_values_are_refused_naming_the_field(ready) -> None:
    d = ready.dispatch
    store = ready.learning.store
    before = snapshot(store)
    deep = _nested(5_000, 1.0)
    for verb, spec in VERBS.items():
        for field in spec.model.model_fields:
            if field == "namespace":
                continue
            out = d({"verb": verb, "body": {"namespace": NS, field: deep}})
            assert out["ok"] is False, (verb, field, out)
            assert not out["error"].startswith("internal error"), (verb, field, out)
    edge = {"namespace": NS, "id": "deep", "src": "a", "dst": "b", "valid_at": 0, "created_at": 0,
            "attributes": {"k": deep}}
    assert d({"verb": "insert_edge", "body": edge})["error"] == "attributes: is nested deeper than 32 levels"
    lone = dict(edge, attributes={"k": "\ud800"})
    assert d({"verb": "insert_edge", "body": lone})["error"] == \
        "attributes: must be valid Unicode text (holds a lone surrogate)"
    line = "[" * 100_000 + "]" * 100_000
    assert json.loads(ready.dispatch_line(line)) == {"ok": False, "verb": None, "error": "request: nested too deeply"}
    assert d({"verb": "health", "body": {"namespace": NS}})["ok"], "the session still answers"
    assert snapshot(store) == before
