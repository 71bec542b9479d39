"""The limits of kg/limits.py at the dispatch boundary: a refused request names the field, echoes
no value and stores nothing; whatever is accepted can be read back (issue 12, items 4, 5 and 8)."""

import json

import pytest

from kg.limits import LAST_TIME, MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTES_DEPTH
from kg.temporal import NewEdge

BASE = {"id": "e1", "src": "alice", "dst": "acme", "relation": "works_at",
        "valid_at": "2019-01-01", "created_at": "2019-01-05T00:00:00Z"}
HUGE = 10**400
OPEN = 2**63 - 1


def call(session, verb, body):
    return session.dispatch({"verb": verb, "body": body})


def nested(depth: int) -> dict:
    """An attributes object ``depth`` levels deep (the object itself is level 1)."""
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def edges_of(session, ns, src="alice", t="2020-01-01"):
    out = call(session, "query_at", {"namespace": ns, "src": src, "t": t})
    assert out["ok"], out
    return sorted(e["id"] for e in out["data"])


# -- item 4: attributes nesting and size ----------------------------------------

def test_attributes_at_the_depth_limit_are_stored_and_read_back(session, ns):
    body = {**BASE, "namespace": ns, "attributes": nested(MAX_ATTRIBUTES_DEPTH)}
    assert call(session, "insert_edge", body)["ok"]
    got = call(session, "get_edge", {"namespace": ns, "edge_id": "e1"})
    assert got["ok"] and got["data"]["attributes"] == nested(MAX_ATTRIBUTES_DEPTH)
    line = json.loads(session.dispatch_line(json.dumps({"verb": "query_at", "body": {
        "namespace": ns, "src": "alice", "t": "2020-01-01"}})))
    assert line["ok"] and line["data"][0]["attributes"] == nested(MAX_ATTRIBUTES_DEPTH)


@pytest.mark.parametrize("depth", [MAX_ATTRIBUTES_DEPTH + 1, 981, 982, 983, 5000])
def test_deeper_attributes_are_refused_and_commit_nothing(session, ns, depth):
    assert call(session, "insert_edge", {**BASE, "namespace": ns, "id": "plain"})["ok"]
    out = call(session, "insert_edge", {**BASE, "namespace": ns, "attributes": nested(depth)})
    assert out == {"ok": False, "verb": "insert_edge",
                   "error": f"attributes: is nested deeper than {MAX_ATTRIBUTES_DEPTH} levels"}
    assert call(session, "get_edge", {"namespace": ns, "edge_id": "e1"})["error"].startswith("edge_id")
    assert edges_of(session, ns) == ["plain"]  # the subject stays readable


def test_deep_attributes_in_contradict_change_nothing(session, ns):
    assert call(session, "insert_edge", {**BASE, "namespace": ns})["ok"]
    before = call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"]
    out = call(session, "contradict", {"namespace": ns, "now_ms": "2021-06-10", "contradicts": ["e1"],
                                       "new_edge": {**BASE, "id": "e2", "valid_at": "2021-06-01",
                                                    "attributes": nested(982)}})
    assert out["ok"] is False and out["error"].startswith("new_edge.attributes: is nested deeper")
    assert call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"] == before
    assert call(session, "get_edge", {"namespace": ns, "edge_id": "e2"})["ok"] is False


def test_attributes_size_limit_is_exact(session, ns):
    filler = MAX_ATTRIBUTES_BYTES - len('{"k":""}')
    fits = {**BASE, "namespace": ns, "id": "fits", "attributes": {"k": "x" * filler}}
    assert call(session, "insert_edge", fits)["ok"]
    over = {**BASE, "namespace": ns, "id": "over", "attributes": {"k": "x" * (filler + 1)}}
    out = call(session, "insert_edge", over)
    assert out["ok"] is False and out["error"] == f"attributes: must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON"
    assert edges_of(session, ns) == ["fits"]


def test_attributes_stored_beyond_the_limits_do_not_poison_their_subject(store, session, ns):
    """As an earlier release could store them: the edge reads with attributes null, the rest as usual."""
    deep = "[" * 981 + "]" * 981
    store.insert_edge(ns, NewEdge("old", "alice", "acme", "knows", 1.0, '{"a":' + deep + "}",
                                  0, None, 10))
    assert call(session, "insert_edge", {**BASE, "namespace": ns, "id": "plain"})["ok"]
    out = call(session, "query_at", {"namespace": ns, "src": "alice", "t": "2020-01-01"})
    assert out["ok"], out
    assert {e["id"]: e["attributes"] for e in out["data"]} == {"old": None, "plain": {}}
    assert call(session, "get_edge", {"namespace": ns, "edge_id": "old"})["data"]["attributes"] is None


# -- item 5: a weight beyond float's range ---------------------------------------

@pytest.mark.parametrize("weight", [HUGE, -HUGE])
def test_huge_integer_weight_is_a_field_error(session, ns, weight):
    out = call(session, "insert_edge", {**BASE, "namespace": ns, "weight": weight})
    assert out["ok"] is False and out["error"].startswith("weight: must be a finite number"), out
    assert "0000" not in out["error"]
    assert edges_of(session, ns) == []
    assert call(session, "insert_edge", {**BASE, "namespace": ns, "weight": 10**300})["ok"]  # fits a float


def test_huge_weight_in_contradict_changes_nothing(session, ns):
    assert call(session, "insert_edge", {**BASE, "namespace": ns})["ok"]
    before = call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"]
    out = call(session, "contradict", {"namespace": ns, "now_ms": "2021-06-10", "contradicts": ["e1"],
                                       "new_edge": {**BASE, "id": "e2", "valid_at": "2021-06-01", "weight": HUGE}})
    assert out["ok"] is False and out["error"].startswith("new_edge.weight: must be a finite number"), out
    assert call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"] == before


def test_huge_weight_in_ingest_refuses_that_row_only(session, ns):
    rows = [{"id": f"i{k}", "src": "s", "dst": f"d{k}", "valid_at": k} for k in range(3)]
    rows.insert(1, {"id": "huge", "src": "s", "dst": "d", "valid_at": 0, "weight": HUGE})
    out = call(session, "ingest", {"namespace": ns, "edges": rows, "created_at": 5})
    assert out["ok"], out
    assert out["data"]["inserted"] == 3
    assert [r["index"] for r in out["data"]["rejected"]] == [1]
    assert out["data"]["rejected"][0]["error"].startswith("weight: must be a finite number")
    assert edges_of(session, ns, src="s", t=10) == ["i0", "i1", "i2"]


# -- item 8: names, namespaces and times that cannot be stored --------------------

BAD = [
    ({"namespace": " "}, "namespace"),
    ({"namespace": "a\x00b"}, "namespace"),
    ({"src": "\x00"}, "src"),
    ({"src": "al\x00ice"}, "src"),
    ({"dst": "ac\nme"}, "dst"),
    ({"id": "e\x001"}, "id"),
    ({"relation": "works\tat"}, "relation"),
    ({"src": "\ud800"}, "src"),
    ({"valid_at": OPEN}, "valid_at"),
    ({"invalid_at": OPEN}, "invalid_at"),
    ({"created_at": OPEN}, "created_at"),
    ({"valid_at": -(2**63)}, "valid_at"),
    ({"valid_at": 2**63}, "valid_at"),
    ({"invalid_at": "2019-01-01"}, "invalid_at"),  # == valid_at: an empty interval
]


@pytest.mark.parametrize("change,field", BAD)
def test_unstorable_names_and_times_are_refused(session, ns, change, field):
    body = {**BASE, "namespace": ns, **change}
    out = call(session, "insert_edge", body)
    assert out["ok"] is False and out["error"].startswith(f"{field}: "), out
    assert "\x00" not in out["error"] and "9223372036854775807" not in out["error"].split(":")[0]
    assert edges_of(session, ns) == []


def test_the_empty_interval_error_says_why(session, ns):
    out = call(session, "insert_edge", {**BASE, "namespace": ns, "invalid_at": BASE["valid_at"]})
    assert out["error"] == ("invalid_at: must be later than valid_at (a fact holds during "
                            "[valid_at, invalid_at), which must not be empty)")


def test_the_last_storable_time_is_accepted_and_read_back(session, ns):
    out = call(session, "insert_edge", {**BASE, "namespace": ns, "valid_at": LAST_TIME - 1,
                                        "invalid_at": LAST_TIME, "created_at": 1})
    assert out["ok"], out
    assert edges_of(session, ns, t=LAST_TIME - 1) == ["e1"]


@pytest.mark.parametrize("verb,body,field", [
    ("query_at", {"namespace": " ", "src": "alice", "t": 1}, "namespace"),
    ("query_at", {"src": "al\x00ice", "t": 1}, "src"),
    ("get_edge", {"namespace": "\x00", "edge_id": "e1"}, "namespace"),
    ("invalidate_edge", {"edge_id": "e1", "invalid_at": OPEN, "expired_at": 5}, "invalid_at"),
    ("invalidate_edge", {"edge_id": "e1", "invalid_at": 5, "expired_at": OPEN}, "expired_at"),
    ("contradict", {"new_edge": {**BASE, "id": "e2"}, "contradicts": ["e\x001"], "now_ms": 1}, "contradicts.0"),
    ("contradict", {"new_edge": {**BASE, "id": "e2"}, "contradicts": ["e1"], "now_ms": OPEN}, "now_ms"),
    ("ingest", {"namespace": "\t", "edges": [{}]}, "namespace"),
    ("health", {"namespace": " "}, "namespace"),
    ("init_router", {"namespace": " ", "in_dim": 4, "targets": ["a", "b"]}, "namespace"),
    ("init_router", {"namespace": "x\x00", "in_dim": 4, "targets": ["a", "b"]}, "namespace"),
])
def test_other_verbs_refuse_them_too(session, ns, verb, body, field):
    assert call(session, "insert_edge", {**BASE, "namespace": ns})["ok"]
    before = call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"]
    out = call(session, verb, {"namespace": ns, **body})
    assert out["ok"] is False and out["error"].startswith(f"{field}: "), out
    assert call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"] == before
