"""``query_at_many`` and ``invalidate_many`` through the dispatch surface: answers in order, as the
single verbs give them; every request bounded (kg/limits.py), and bad input names its field."""

from kg.limits import MAX_INVALIDATIONS, MAX_QUESTIONS

BASE = {"src": "alice", "relation": "knows", "valid_at": "2019-01-01", "created_at": "2019-01-05T00:00:00Z"}


def call(session, verb, body):
    return session.dispatch({"verb": verb, "body": body})


def stored(session, ns):
    for k in range(3):
        assert call(session, "insert_edge", {**BASE, "namespace": ns, "id": f"e{k}", "dst": f"d{k}"})["ok"]


def test_query_at_many_answers_in_order_as_query_at(session, ns):
    stored(session, ns)
    assert call(session, "invalidate_edge", {"namespace": ns, "edge_id": "e1", "invalid_at": "2020-01-01",
                                             "expired_at": "2020-02-01"})["ok"]
    asked = [{"src": "alice", "t": "2021-01-01"}, {"src": "bob", "t": 0},
             {"src": "alice", "t": "2021-01-01", "known_at": "2020-01-15"}, {"src": "alice", "t": "2019-06-01"}]
    out = call(session, "query_at_many", {"namespace": ns, "questions": asked})
    assert out["ok"], out
    singles = [call(session, "query_at", {"namespace": ns, **q})["data"] for q in asked]
    assert out["data"] == singles
    assert [[e["id"] for e in a] for a in out["data"]] == [["e0", "e2"], [], ["e0", "e1", "e2"], ["e0", "e1", "e2"]]


def test_invalidate_many_as_invalidate_edge(session, ns):
    stored(session, ns)
    items = [{"edge_id": "e0", "invalid_at": "2020-01-01", "expired_at": "2020-02-01"},
             {"edge_id": "e0", "invalid_at": "2021-01-01", "expired_at": "2020-03-01"}]
    out = call(session, "invalidate_many", {"namespace": ns, "invalidations": items})
    assert out["ok"], out
    assert [v["changed"] for v in out["data"]] == [True, False]
    assert out["data"][0]["invalid_at"] == 1577836800000
    assert len(call(session, "history", {"namespace": ns, "edge_id": "e0"})["data"]) == 2


def test_batches_are_bounded_and_not_empty(session, ns):
    stored(session, ns)
    many = call(session, "query_at_many", {"namespace": ns, "questions": [{"src": "alice", "t": 0}] * (MAX_QUESTIONS + 1)})
    assert many["ok"] is False and many["error"].startswith("questions: "), many
    assert call(session, "query_at_many", {"namespace": ns, "questions": [{"src": "alice", "t": 0}] * MAX_QUESTIONS})["ok"]
    item = {"edge_id": "e1", "invalid_at": "2020-01-01", "expired_at": "2020-02-01"}
    out = call(session, "invalidate_many", {"namespace": ns, "invalidations": [item] * (MAX_INVALIDATIONS + 1)})
    assert out["ok"] is False and out["error"].startswith("invalidations: "), out
    for verb, field in (("query_at_many", "questions"), ("invalidate_many", "invalidations")):
        empty = call(session, verb, {"namespace": ns, field: []})
        assert empty["ok"] is False and empty["error"].startswith(f"{field}: ")
    assert call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"][-1]["valid_to"] is None


def test_bad_items_name_their_field_and_change_nothing(session, ns):
    stored(session, ns)
    bad_time = call(session, "query_at_many", {"namespace": ns, "questions": [{"src": "alice", "t": 0},
                                                                              {"src": "alice", "t": "someday"}]})
    assert bad_time["ok"] is False and bad_time["error"].startswith("questions.1.t: ")
    assert "someday" not in bad_time["error"]
    extra = call(session, "query_at_many", {"namespace": ns, "questions": [{"src": "alice", "t": 0, "when": 1}]})
    assert extra["error"] == "questions.0.when: is not a known field"
    good = {"edge_id": "e1", "invalid_at": "2020-01-01", "expired_at": "2020-02-01"}
    blank = call(session, "invalidate_many", {"namespace": ns, "invalidations": [good, {**good, "edge_id": " "}]})
    assert blank["error"] == "invalidations.1.edge_id: must not be blank"
    unknown = call(session, "invalidate_many", {"namespace": ns, "invalidations": [good, {**good, "edge_id": "nope"}]})
    assert unknown["ok"] is False and unknown["error"].startswith("invalidations.1.edge_id: no edge")
    assert len(call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"]) == 1
