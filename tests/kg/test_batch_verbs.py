"""``query_at_many``, ``invalidate_many`` and the neighbourhood verbs through the dispatch surface: answers in order, as the
single verbs give them; every request bounded (kg/limits.py), and bad input names its field."""

from kg.limits import MAX_HOPS, MAX_INVALIDATIONS, MAX_NEIGHBOURHOOD_EDGES, MAX_NEIGHBOURHOODS, MAX_QUESTIONS

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


def test_neighbourhood_walks_through_the_dispatch_surface(session, ns):
    """alice -> bob -> carol (and bob -> dave, closed in 2020): the walk, its max_edges cut, the
    past as known before the close, and many walks answering as the single verb does."""
    chain = [("e-ab", "alice", "bob"), ("e-bc", "bob", "carol"), ("e-bd", "bob", "dave"), ("e-cx", "carol", "x")]
    for edge_id, src, dst in chain:
        assert call(session, "insert_edge", {**BASE, "namespace": ns, "id": edge_id, "src": src, "dst": dst})["ok"]
    assert call(session, "invalidate_edge", {"namespace": ns, "edge_id": "e-bd", "invalid_at": "2020-01-01",
                                             "expired_at": "2020-02-01"})["ok"]
    ids = lambda out: [e["edge_id"] for e in out["data"]]  # noqa: E731
    walk = {"namespace": ns, "src": "alice", "t": "2021-01-01"}
    assert ids(call(session, "neighbourhood", walk)) == ["e-ab"]  # one hop by default
    assert ids(call(session, "neighbourhood", {**walk, "hops": 3})) == ["e-ab", "e-bc", "e-cx"]
    assert ids(call(session, "neighbourhood", {**walk, "hops": 2, "known_at": "2020-01-15"})) == ["e-ab", "e-bc", "e-bd"]
    assert ids(call(session, "neighbourhood", {**walk, "hops": 3, "max_edges": 2})) == ["e-ab", "e-bc"]
    first = call(session, "neighbourhood", {**walk, "hops": 2})["data"][0]
    assert first == {"src": "alice", "dst": "bob", "relation": "knows", "weight": 1.0,
                     "valid_from": 1546300800000, "edge_id": "e-ab"}
    walks = [{"src": "alice", "t": "2021-01-01", "hops": 3}, {"src": "bob", "t": "2019-06-01", "hops": 2},
             {"src": "nobody", "t": 0}, {"src": "alice", "t": "2021-01-01", "hops": 2, "known_at": "2020-01-15"}]
    many = call(session, "neighbourhood_many", {"namespace": ns, "questions": walks, "max_edges": 3})
    assert many["ok"], many
    assert many["data"] == [call(session, "neighbourhood", {"namespace": ns, "max_edges": 3, **w})["data"] for w in walks]
    assert [len(a) for a in many["data"]] == [3, 3, 0, 3]


def test_neighbourhood_requests_are_bounded_and_name_their_field(session, ns):
    walk = {"namespace": ns, "src": "alice", "t": 0}
    for body, field in (({**walk, "hops": MAX_HOPS + 1}, "hops"), ({**walk, "hops": 0}, "hops"),
                        ({**walk, "max_edges": MAX_NEIGHBOURHOOD_EDGES + 1}, "max_edges"),
                        ({**walk, "t": "someday"}, "t")):
        out = call(session, "neighbourhood", body)
        assert out["ok"] is False and out["error"].startswith(f"{field}: "), out
    one = {"src": "alice", "t": 0}
    too_many = call(session, "neighbourhood_many", {"namespace": ns, "questions": [one] * (MAX_NEIGHBOURHOODS + 1)})
    assert too_many["ok"] is False and too_many["error"].startswith("questions: "), too_many
    assert call(session, "neighbourhood_many", {"namespace": ns, "questions": [one] * MAX_NEIGHBOURHOODS})["ok"]
    bad = call(session, "neighbourhood_many", {"namespace": ns, "questions": [one, {**one, "hops": 9}]})
    assert bad["ok"] is False and bad["error"].startswith("questions.1.hops: "), bad
    empty = call(session, "neighbourhood_many", {"namespace": ns, "questions": []})
    assert empty["ok"] is False and empty["error"].startswith("questions: ")
