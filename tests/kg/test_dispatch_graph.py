"""The graph verbs through the JSON dispatch surface: shapes, bad input, and `kg dispatch`."""

import json
import subprocess
import sys

import pytest

BASE = {"id": "e1", "src": "alice", "dst": "acme", "relation": "works_at",
        "valid_at": "2019-01-01", "created_at": "2019-01-05T00:00:00Z"}


def call(session, verb, body):
    return session.dispatch({"verb": verb, "body": body})


def test_insert_get_query_history_roundtrip(session, ns):
    out = call(session, "insert_edge", {**BASE, "namespace": ns})
    assert out["ok"] and out["verb"] == "insert_edge"
    got = call(session, "get_edge", {"namespace": ns, "edge_id": "e1"})
    assert got["data"]["valid_at"] == 1546300800000 and got["data"]["created_at"] == 1546646400000
    listed = call(session, "query_at", {"namespace": ns, "src": "alice", "t": "2020-01-01"})
    assert isinstance(listed["data"], list) and [e["id"] for e in listed["data"]] == ["e1"]
    out = call(session, "invalidate_edge", {"namespace": ns, "edge_id": "e1",
                                           "invalid_at": "2020-06-01", "expired_at": "2020-06-02"})
    assert out["ok"] and out["data"]["invalid_at"] == 1590969600000
    hist = call(session, "history", {"namespace": ns, "edge_id": "e1"})
    assert [v["version"] for v in hist["data"]] == [1, 2]
    old = call(session, "query_at", {"namespace": ns, "src": "alice", "t": "2020-07-01", "known_at": "2020-06-01"})
    assert [e["id"] for e in old["data"]] == ["e1"]


def test_contradict_and_ingest_verbs(session, ns):
    call(session, "insert_edge", {**BASE, "namespace": ns})
    out = call(session, "contradict", {"namespace": ns, "now_ms": "2021-06-10", "contradicts": ["e1"],
                                       "new_edge": {**BASE, "id": "e2", "dst": "globex", "valid_at": "2021-06-01",
                                                    "created_at": None}})
    assert out["ok"], out
    assert out["data"]["invalidated"][0]["invalidated_by"] == "e2"
    deep: object = 1
    for _ in range(5_000):
        deep = {"k": deep}
    rows = [{"id": f"i{k}", "src": "s", "dst": f"d{k}", "valid_at": k} for k in range(5)] + [
        {"id": "bad"}, {"id": "deep", "src": "s", "dst": "d", "valid_at": 0, "attributes": deep}]
    out = call(session, "ingest", {"namespace": ns, "edges": rows, "created_at": 5})
    assert out["ok"] and out["data"]["inserted"] == 5
    assert out["data"]["rejected"][0]["index"] == 5 and "src" in out["data"]["rejected"][0]["error"]
    assert out["data"]["rejected"][1] == {"index": 6, "error": "attributes: is nested deeper than 32 levels"}
    again = call(session, "ingest", {"namespace": ns, "edges": rows[:5], "created_at": 9})
    assert again["data"]["inserted"] == 0 and again["data"]["unchanged"] == 5


BAD = [
    ({**BASE, "id": ""}, "id"),
    ({**BASE, "src": "   "}, "src"),
    ({k: v for k, v in BASE.items() if k != "dst"}, "dst"),
    ({k: v for k, v in BASE.items() if k != "valid_at"}, "valid_at"),
    ({k: v for k, v in BASE.items() if k != "created_at"}, "created_at"),
    ({**BASE, "invalid_at": "2018-01-01"}, "invalid_at"),
    ({**BASE, "valid_at": "2019-02-30"}, "valid_at"),
    ({**BASE, "valid_at": 1.5}, "valid_at"),
    ({**BASE, "valid_at": True}, "valid_at"),
    ({**BASE, "weight": "heavy"}, "weight"),
    ({**BASE, "weight": float("inf")}, "weight"),
    ({**BASE, "attributes": ["not", "a", "map"]}, "attributes"),
    ({**BASE, "attributes": {"x": float("nan")}}, "attributes"),
    ({**BASE, "surprise": 1}, "surprise"),
    ({**BASE, "id": "x" * 10_000}, "id"),
    ({**BASE, "namespace": ""}, "namespace"),
]


@pytest.mark.parametrize("body,field", BAD)
def test_bad_insert_names_the_field_and_stores_nothing(session, ns, body, field):
    body = {**body, "namespace": body.get("namespace", ns) or ""}
    out = call(session, "insert_edge", body)
    assert out["ok"] is False and out["error"].startswith(field), out
    assert "2019-02-30" not in out["error"]
    assert call(session, "query_at", {"namespace": ns, "src": "alice", "t": "2020-01-01"})["data"] == []


@pytest.mark.parametrize("verb,body,field", [
    ("get_edge", {}, "edge_id"),
    ("get_edge", {"edge_id": "nope"}, "edge_id"),
    ("query_at", {"src": "alice"}, "t"),
    ("query_at", {"src": "alice", "t": "yesterday"}, "t"),
    ("query_at", {"src": 7, "t": 1}, "src"),
    ("invalidate_edge", {"edge_id": "e1", "invalid_at": 1}, "expired_at"),
    ("invalidate_edge", {"edge_id": "nope", "invalid_at": 1, "expired_at": 2}, "edge_id"),
    ("contradict", {"new_edge": {"id": "x", "src": "a", "dst": "b", "valid_at": 1}, "contradicts": "e1", "now_ms": 1}, "contradicts"),
    ("contradict", {"new_edge": {"id": "x", "src": "a", "dst": "b", "valid_at": 1}, "contradicts": ["zz"], "now_ms": 1}, "contradicts"),
    ("history", {"edge_id": None}, "edge_id"),
    ("ingest", {"edges": []}, "edges"),
])
def test_bad_bodies_name_the_field(session, ns, verb, body, field):
    out = call(session, verb, {**body, "namespace": ns})
    assert out["ok"] is False and out["error"].startswith(field), out


def test_bad_requests(session):
    assert session.dispatch({"verb": "fly", "body": {}})["error"].startswith("verb")
    assert session.dispatch({"body": {}})["error"].startswith("verb")
    assert session.dispatch(["not", "a", "dict"])["error"].startswith("request")
    assert session.dispatch({"verb": "get_edge", "body": "x"})["error"].startswith("body")
    assert json.loads(session.dispatch_line("{nope"))["error"].startswith("request")
    big = json.dumps({"verb": "health", "body": {"pad": "x" * 2_000_000}})
    assert json.loads(session.dispatch_line(big))["error"].startswith("request")


def test_failed_invalidate_changes_nothing(session, ns):
    call(session, "insert_edge", {**BASE, "namespace": ns})
    before = call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"]
    out = call(session, "invalidate_edge", {"namespace": ns, "edge_id": "e1", "invalid_at": "2018-01-01",
                                           "expired_at": "2020-01-01"})
    assert out["ok"] is False and out["error"].startswith("invalid_at")
    assert call(session, "history", {"namespace": ns, "edge_id": "e1"})["data"] == before


def test_kg_dispatch_answers_every_line_in_order(kg_env, ns):
    lines = [
        {"verb": "insert_edge", "body": {**BASE, "namespace": ns}},
        "this is not json",
        {"verb": "insert_edge", "body": {**BASE, "namespace": ns, "valid_at": "never"}},
        {"verb": "query_at", "body": {"namespace": ns, "src": "alice", "t": "2020-01-01"}},
        {"verb": "get_edge", "body": {"namespace": ns, "edge_id": "e1"}},
    ]
    text = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n"
    proc = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=text, env=kg_env,
                          capture_output=True, text=True, timeout=120)
    out = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [o["ok"] for o in out] == [True, False, False, True, True], proc.stderr
    assert out[2]["error"].startswith("valid_at")
    assert out[3]["data"][0]["id"] == "e1"


def test_health_reports_graph_and_redis(session):
    data = call(session, "health", {})["data"]
    assert data["graph"]["reachable"] is True and data["redis"]["reachable"] is True


# -- issue 12: what the answer echoes, lines that are not UTF-8 --------------------

@pytest.mark.parametrize("verb", [["health"], {"v": "health"}, 7, True, None, "\ud800"])
def test_the_answer_echoes_only_a_string_verb(session, verb):
    out = session.dispatch({"verb": verb, "body": {}})
    assert out["ok"] is False and out["verb"] is None and out["error"].startswith("verb: ")
    line = json.loads(session.dispatch_line(json.dumps({"verb": verb, "body": {}})))
    assert line["verb"] is None


def test_a_string_verb_is_echoed_known_or_not(session):
    assert session.dispatch({"verb": "no-such-verb", "body": {}}) == {
        "ok": False, "verb": "no-such-verb", "error": "verb: is not a known verb"}
    assert session.dispatch({"verb": "health", "body": {"x": 1}})["verb"] == "health"


def test_kg_dispatch_answers_a_line_that_is_not_utf8_and_goes_on(kg_env, ns):
    good = json.dumps({"verb": "query_at", "body": {"namespace": ns, "src": "alice", "t": 1}}).encode()
    stdin = b"\n".join([good, b"\xff\xfe", good, b'{"verb": "get_edge", "body": {"edge_id": "\xc3"}}', good]) + b"\n"
    proc = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=stdin, env=kg_env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["ok"] for o in out] == [True, False, True, False, True]
    assert out[1] == out[3] == {"ok": False, "verb": None, "error": "request: not valid UTF-8"}


def test_kg_dispatch_names_a_huge_weight(kg_env, ns):
    line = json.dumps({"verb": "insert_edge", "body": {**BASE, "namespace": ns, "weight": 10**400}})
    proc = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=line + "\n", env=kg_env,
                          capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["error"].startswith("weight: must be a finite number"), out


def test_ingest_verb_takes_contradictions_and_invalidations(session, ns):
    rows = [{"id": "a", "src": "s", "dst": "d1", "valid_at": 10}, {"id": "b", "src": "s", "dst": "d2", "valid_at": 10},
            {"id": "c", "src": "s", "dst": "d3", "valid_at": 20, "contradicts": ["a"], "created_at": 7},
            {"invalidate": {"edge_id": "b", "invalid_at": 30, "expired_at": 8}},
            {"invalidate": {"edge_id": "b", "invalid_at": "soon"}},
            {"invalidate": {"edge_id": "zz", "invalid_at": 30}}]
    out = call(session, "ingest", {"namespace": ns, "edges": rows, "created_at": 5})
    assert out["ok"], out
    assert (out["data"]["inserted"], out["data"]["invalidated"]) == (3, 2)
    assert out["data"]["rejected"][0]["index"] == 4 and out["data"]["rejected"][0]["error"].startswith("invalidate.invalid_at")
    assert out["data"]["rejected"][1]["id"] == "zz" and "no edge" in out["data"]["rejected"][1]["error"]
    now = call(session, "query_at", {"namespace": ns, "src": "s", "t": 25})["data"]
    assert [e["id"] for e in now] == ["b", "c"]
    assert [e["id"] for e in call(session, "query_at", {"namespace": ns, "src": "s", "t": 35})["data"]] == ["c"]
