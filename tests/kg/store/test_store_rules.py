"""Every rule of DESIGN.md's bi-temporal semantics, one test each, on the real server."""

import pytest

from kg.errors import Conflict, InvalidInput, NotFound
from kg.store import EdgeStore
from kg.temporal import NewEdge
from kg.usercypher import run_read_only


def e(id_, src="s", dst="d", rel="knows", valid_at=10, invalid_at=None, created_at=100, attributes="{}"):
    return NewEdge(id_, src, dst, rel, 1.0, attributes, valid_at, invalid_at, created_at)


def test_identical_reinsert_is_a_noop(store, ns):
    assert store.insert_edge(ns, e("a"))["status"] == "inserted"
    assert store.insert_edge(ns, e("a", created_at=999))["status"] == "unchanged"
    assert len(store.history(ns, "a")) == 1
    assert store.get_edge(ns, "a")["created_at"] == 100


def test_same_id_other_content_is_an_error_naming_the_id(store, ns):
    store.insert_edge(ns, e("a"))
    with pytest.raises(Conflict, match="'a'"):
        store.insert_edge(ns, e("a", dst="other"))
    assert store.get_edge(ns, "a")["dst"] == "d"


def test_invalidate_earliest_wins_and_is_idempotent(store, ns):
    store.insert_edge(ns, e("a"))
    assert store.invalidate_edge(ns, "a", 50, 200)["changed"] is True
    assert store.invalidate_edge(ns, "a", 50, 300)["changed"] is False  # repeat
    assert store.invalidate_edge(ns, "a", 70, 300)["changed"] is False  # later: loses
    assert store.invalidate_edge(ns, "a", 30, 400)["changed"] is True  # earlier: wins
    history = store.history(ns, "a")
    assert [(v["valid_to"], v["sys_from"], v["sys_to"]) for v in history] == [
        (None, 100, 200), (50, 200, 400), (30, 400, None)]


def test_invalidate_before_valid_at_is_an_error(store, ns):
    store.insert_edge(ns, e("a"))
    with pytest.raises(InvalidInput) as err:
        store.invalidate_edge(ns, "a", 5, 200)
    assert err.value.field == "invalid_at"
    assert len(store.history(ns, "a")) == 1


def test_expired_before_current_version_is_an_error(store, ns):
    store.insert_edge(ns, e("a"))
    with pytest.raises(InvalidInput) as err:
        store.invalidate_edge(ns, "a", 50, 99)
    assert err.value.field == "expired_at"
    assert store.get_edge(ns, "a")["invalid_at"] is None


def test_invalidate_unknown_edge(store, ns):
    with pytest.raises(NotFound) as err:
        store.invalidate_edge(ns, "nope", 50, 200)
    assert err.value.field == "edge_id"


def test_contradict_records_provenance_and_deletes_nothing(store, ns):
    store.insert_edge(ns, e("a"))
    store.insert_edge(ns, e("b", dst="d2"))
    out = store.contradict(ns, e("c", dst="d3", valid_at=40, created_at=500), ["a", "b"], 500)
    assert [v["invalidated_by"] for v in out["invalidated"]] == ["c", "c"]
    assert [v["invalid_at"] for v in out["invalidated"]] == [40, 40]
    assert len(store.history(ns, "a")) == 2 and len(store.history(ns, "b")) == 2
    assert sorted(v["dst"] for v in store.query_at(ns, "s", 20)) == ["d", "d2"]
    assert [v["dst"] for v in store.query_at(ns, "s", 45)] == ["d3"]


def test_contradict_with_unknown_id_changes_nothing(store, ns):
    store.insert_edge(ns, e("a"))
    with pytest.raises(NotFound) as err:
        store.contradict(ns, e("c", valid_at=40, created_at=500), ["a", "missing"], 500)
    assert err.value.field == "contradicts"
    assert len(store.history(ns, "a")) == 1
    with pytest.raises(NotFound):
        store.get_edge(ns, "c")


def test_functional_relation_contradicts_automatically(store, ns):
    store.insert_edge(ns, e("acme", src="alice", dst="Acme", rel="works_at", valid_at=10, created_at=100))
    store.insert_edge(ns, e("globex", src="alice", dst="Globex", rel="works_at", valid_at=50, created_at=200))
    assert [v["dst"] for v in store.query_at(ns, "alice", 20)] == ["Acme"]
    assert [v["dst"] for v in store.query_at(ns, "alice", 60)] == ["Globex"]
    acme = store.get_edge(ns, "acme")
    assert (acme["invalid_at"], acme["invalidated_by"], acme["expired_at"]) == (50, "globex", 200)


def test_functional_insert_of_an_earlier_fact_is_cut_by_the_later_one(store, ns):
    store.insert_edge(ns, e("globex", src="bob", dst="Globex", rel="works_at", valid_at=50, created_at=100))
    store.insert_edge(ns, e("acme", src="bob", dst="Acme", rel="works_at", valid_at=10, created_at=200))
    assert [v["dst"] for v in store.query_at(ns, "bob", 20)] == ["Acme"]
    assert [v["dst"] for v in store.query_at(ns, "bob", 60)] == ["Globex"]
    assert store.get_edge(ns, "acme")["invalidated_by"] == "globex"


def test_non_functional_relations_coexist(store, ns):
    store.insert_edge(ns, e("x", dst="A", rel="knows", valid_at=10))
    store.insert_edge(ns, e("y", dst="B", rel="knows", valid_at=20, created_at=200))
    assert sorted(v["dst"] for v in store.query_at(ns, "s", 30)) == ["A", "B"]


def test_half_open_intervals(store, ns):
    store.insert_edge(ns, e("a", valid_at=10, invalid_at=20))
    assert store.query_at(ns, "s", 9) == []
    assert [v["id"] for v in store.query_at(ns, "s", 10)] == ["a"]
    assert [v["id"] for v in store.query_at(ns, "s", 19)] == ["a"]
    assert store.query_at(ns, "s", 20) == []


def test_negative_times_before_1970_and_bc(store, ns):
    bc = -75_768_220_800_000  # year -431
    store.insert_edge(ns, e("old", valid_at=bc, invalid_at=bc + 10**11, created_at=100))
    assert [v["id"] for v in store.query_at(ns, "s", bc + 5)] == ["old"]
    assert store.query_at(ns, "s", 0) == []


def test_known_at_hides_edges_created_later(store, ns):
    store.insert_edge(ns, e("a", created_at=100))
    store.insert_edge(ns, e("b", dst="d2", created_at=300))
    assert [v["id"] for v in store.query_at(ns, "s", 50, known_at=200)] == ["a"]
    assert sorted(v["id"] for v in store.query_at(ns, "s", 50, known_at=300)) == ["a", "b"]


def test_namespaces_isolate_tenants_completely(store, ns):
    other = ns + "-other"
    store.insert_edge(ns, e("a"))
    store.insert_edge(other, e("a", dst="elsewhere"))  # same id, other tenant: no conflict
    assert store.get_edge(ns, "a")["dst"] == "d"
    assert store.get_edge(other, "a")["dst"] == "elsewhere"
    store.invalidate_edge(other, "a", 50, 200)
    assert store.get_edge(ns, "a")["invalid_at"] is None
    assert [v["dst"] for v in store.query_at(ns, "s", 60)] == ["d"]
    assert store.query_at(other, "s", 60) == []


INJECTION = [
    "Robert'); MATCH (n) DETACH DELETE n; //",
    '"}) DETACH DELETE r //',
    "`FACT` {ns: 'x'}",
    "MERGE (x) RETURN x",
    "naïve 東京 🚀 \\ \n tab\t",
    "$ns",
]


@pytest.mark.parametrize("text", INJECTION)
def test_injection_looking_strings_are_plain_data(store, ns, text):
    attributes = '{"note":' + __import__("json").dumps(text) + "}"
    store.insert_edge(ns, e(text, src=text, dst=text, rel=text, attributes=attributes))
    view = store.get_edge(ns, text)
    assert (view["id"], view["src"], view["dst"], view["relation"]) == (text, text, text, text)
    assert view["attributes"] == {"note": text}
    assert [v["id"] for v in store.query_at(ns, text, 10)] == [text]
    assert store.query_at(ns, "s", 10) == []  # nothing else appeared or vanished
    store.insert_edge(ns, e(text + "#2", src=text, dst="plain", rel=text))  # finds the same node again
    ends = run_read_only(store.graph, "MATCH (a:Entity)-[r:FACT]->(b:Entity) WHERE r.ns = $ns "
                         "RETURN a.name AS a, b.name AS b, a.ns AS a_ns", ns=ns)
    assert sorted(ends, key=lambda r: r["b"] == text) == [
        {"a": text, "b": "plain", "a_ns": ns}, {"a": text, "b": text, "a_ns": ns}]
    nodes = run_read_only(store.graph, "MATCH (n:Entity) WHERE n.ns = $ns RETURN count(n) AS n", ns=ns)
    assert nodes == [{"n": 2}]


def test_functional_insert_is_cut_once_by_the_first_later_fact(store, ns):
    store.insert_edge(ns, e("late", src="carol", dst="C", rel="works_at", valid_at=30, created_at=100))
    store.insert_edge(ns, e("mid", src="carol", dst="B", rel="works_at", valid_at=20, created_at=110))
    store.insert_edge(ns, e("early", src="carol", dst="A", rel="works_at", valid_at=10, created_at=120))
    assert [v["dst"] for v in store.query_at(ns, "carol", 15)] == ["A"]
    assert [v["dst"] for v in store.query_at(ns, "carol", 25)] == ["B"]
    assert [v["dst"] for v in store.query_at(ns, "carol", 35)] == ["C"]
    early = store.history(ns, "early")
    assert [(v["valid_to"], v["invalidated_by"]) for v in early] == [(None, None), (20, "mid")]


def _jobs(store, ns, subject):
    return [(v["version"], v["dst"], v["valid_from"], v["valid_to"], v["invalidated_by"])
            for i in sorted({v["id"] for t in range(0, 200, 5) for v in store.query_at(ns, subject, t)})
            for v in store.history(ns, i)]


@pytest.mark.parametrize("subject", ["dave", "$ns"])
def test_functional_batches_equal_one_by_one_in_and_out_of_order(store, ns, subject):
    """Batches read rivals through the interval index (in order) or read all (out of order); both equal one by one."""
    def jobs(ks, created):
        return [e(f"j{k}", src=subject, dst=f"org{k}", rel="works_at", valid_at=10 * k, created_at=created + n)
                for n, k in enumerate(ks)]
    batches = [jobs((1, 2, 3), 100), jobs((5, 4, 9, 6), 200), jobs((0, 7), 300)]
    one_by_one = ns + "-single"
    for edge in [edge for batch in batches for edge in batch]:
        store.insert_edge(one_by_one, edge)
    for batch in batches:
        assert store.insert_many(ns, batch).rejected == []
    assert _jobs(store, ns, subject) == _jobs(store, one_by_one, subject)
    assert [v["dst"] for v in store.query_at(ns, subject, 55)] == ["org5"]
    assert [v["dst"] for v in store.query_at(ns, subject, 5)] == ["org0"]
    frontier = run_read_only(store.graph, "MATCH (f:Frontier) WHERE f.ns = $ns RETURN f.src AS src, "
                             "f.relation AS relation, f.valid_from AS valid_from", ns=ns)
    assert frontier == [{"src": subject, "relation": "works_at", "valid_from": 90}]


def test_in_order_batch_cuts_a_stored_fact_that_ends_before_its_later_facts(store, ns):
    """The interval-index read must use the batch's earliest time: the stored rival does not contain the later ones."""
    day = 86_400_000  # days apart, so the index files the old fact under keys the later time does not stab
    store.insert_edge(ns, e("old", src="gail", dst="A", rel="works_at", valid_at=10 * day, invalid_at=45 * day))
    batch = [e("b1", src="gail", dst="B", rel="works_at", valid_at=40 * day, created_at=200),
             e("b2", src="gail", dst="C", rel="works_at", valid_at=50 * day, created_at=201)]
    assert store.insert_many(ns, batch).rejected == []
    assert store.get_edge(ns, "old")["invalid_at"] == 40 * day
    assert store.get_edge(ns, "b1")["invalid_at"] == 50 * day
    assert [v["dst"] for v in store.query_at(ns, "gail", 42 * day)] == ["B"]


def _plain_then_functional(store):
    """Two stores on one graph: works_at plain (before it was made functional), then functional."""
    from kg.store import EdgeStore

    return EdgeStore(store.graph, functional=()), EdgeStore(store.graph, functional=("works_at",))


def test_relation_made_functional_after_its_facts_were_stored(store, ns):
    """Facts stored while a relation was not functional are found when it becomes functional."""
    plain, functional = _plain_then_functional(store)
    plain.insert_edge(ns, e("late", src="erin", dst="Late", rel="works_at", valid_at=50, created_at=100))
    plain.insert_edge(ns, e("now", src="erin", dst="Now", rel="works_at", valid_at=20, created_at=110))
    functional.insert_edge(ns, e("early", src="erin", dst="Early", rel="works_at", valid_at=10, created_at=120))
    assert store.get_edge(ns, "early")["invalid_at"] == 20  # cut by the first later fact
    assert sorted(v["dst"] for v in store.query_at(ns, "erin", 60)) == ["Late", "Now"]  # stored before: untouched


def test_overlapping_history_from_before_a_relation_was_functional_is_read_in_full(store, ns):
    """Two open facts stored while works_at was plain: a later functional fact must end both, not only the latest."""
    plain, functional = _plain_then_functional(store)
    plain.insert_edge(ns, e("v", src="hal", dst="V", rel="works_at", valid_at=60, created_at=100))
    plain.insert_edge(ns, e("l", src="hal", dst="L", rel="works_at", valid_at=50, created_at=101))
    functional.insert_edge(ns, e("n", src="hal", dst="N", rel="works_at", valid_at=20, created_at=102))
    assert store.get_edge(ns, "n")["invalid_at"] == 50
    assert sorted(v["dst"] for v in store.query_at(ns, "hal", 65)) == ["L", "V"]  # untouched: starts before neither
    functional.insert_many(ns, [e("m", src="hal", dst="M", rel="works_at", valid_at=70, created_at=103)])
    assert [v["dst"] for v in store.query_at(ns, "hal", 75)] == ["M"]
    assert (store.get_edge(ns, "v")["invalid_at"], store.get_edge(ns, "l")["invalid_at"]) == (70, 70)


def test_frontier_names_the_latest_fact_of_each_subject(store, ns):
    """In-order batches for many subjects keep one Frontier per subject pointing at its latest fact."""
    subjects = [f"s{i}" for i in range(50)]
    for round_ in range(3):
        batch = [e(f"{s}-{round_}", src=s, dst=f"org{round_}", rel="works_at", valid_at=10 * round_ + i % 7,
                   created_at=100 + round_) for i, s in enumerate(subjects)]
        assert store.insert_many(ns, batch).rejected == []
    frontiers = run_read_only(store.graph, "MATCH (f:Frontier) WHERE f.ns = $ns "
                              "RETURN f.src AS src, f.edge_id AS id, f.valid_from AS t", ns=ns)
    assert sorted((f["src"], f["id"], f["t"]) for f in frontiers) == sorted(
        (s, f"{s}-2", 20 + i % 7) for i, s in enumerate(subjects))
    for i, s in enumerate(subjects):
        assert [v["id"] for v in store.query_at(ns, s, 30)] == [f"{s}-2"]
        assert store.get_edge(ns, f"{s}-1")["invalid_at"] == 20 + i % 7


def test_expect_new_batch_with_existing_ids_falls_back_to_reading_them(store, ns):
    """A batch that skips the id read but meets stored ids behaves exactly like one that reads them."""
    stored = [e("old", src="f", dst="A", valid_at=10), e("clash", src="f", dst="B", valid_at=10),
              e("job0", src="f", dst="C", rel="works_at", valid_at=10)]
    store.insert_many(ns, stored)
    batch = [e("new", src="f", dst="D", valid_at=20), e("old", src="f", dst="A", valid_at=10),
             e("clash", src="f", dst="other", valid_at=10), e("job0", src="f", dst="C", rel="works_at", valid_at=10),
             e("job1", src="f", dst="E", rel="works_at", valid_at=30, created_at=200)]
    result = store.insert_many(ns, batch, expect_new=True)
    assert (result.inserted, result.unchanged) == (2, 2)
    assert [edge_id for edge_id, _ in result.rejected] == ["clash"]
    assert [len(store.history(ns, i)) for i in ("new", "old", "clash", "job0", "job1")] == [1, 1, 1, 2, 1]
    assert store.get_edge(ns, "job0")["invalid_at"] == 30
    fresh = store.insert_many(ns, [e("fresh", src="f", dst="G", valid_at=40)], expect_new=True)
    assert (fresh.inserted, store.get_edge(ns, "fresh")["dst"]) == (1, "G")


def test_query_at_answers_a_subject_that_outgrows_the_whole_subject_scan(store, ns):
    """query_at scans a small subject whole; once it has scan_limit versions the scan is cut short and the keyed read must answer."""
    small_scan = EdgeStore(store.graph, store.functional, scan_limit=3)
    store.insert_edge(ns, e("j1", src="erin", dst="org1", rel="works_at", valid_at=10, created_at=100))
    assert [v["dst"] for v in small_scan.query_at(ns, "erin", 95)] == ["org1"]
    later = [e(f"j{k}", src="erin", dst=f"org{k}", rel="works_at", valid_at=10 * k, created_at=200) for k in range(2, 11)]
    assert store.insert_many(ns, later).rejected == []
    for k in range(1, 11):
        assert [v["dst"] for v in small_scan.query_at(ns, "erin", 10 * k + 5)] == [f"org{k}"]
        assert [v["dst"] for v in small_scan.query_at(ns, "erin", 10 * k + 5, known_at=150)] == ["org1"]
    assert [v["dst"] for v in small_scan.query_at(ns, "erin", 5)] == []


def test_neighbourhood_reads_a_frontier_with_a_large_subject_by_keys(store, ns):
    """A hop scans its whole frontier at once; a scan cut short by a large subject is not used:
    the hop is read by time keys, and the subject that filled the scan is remembered as large."""
    small_scan = EdgeStore(store.graph, store.functional, scan_limit=3)
    keyed = EdgeStore(store.graph, store.functional, scan_limit=0)
    edges = [e(f"r-{d}", src="root", dst=d, valid_at=10) for d in ("hubby", "s1", "s2")]
    edges += [e(f"h{k}", src="hubby", dst=f"org{k}", rel="works_at", valid_at=10 * k) for k in range(1, 9)]
    edges += [e("s1-x", src="s1", dst="x", valid_at=10), e("s2-y", src="s2", dst="y", valid_at=10)]
    assert store.insert_many(ns, edges).rejected == []
    for t, known_at in ((85, None), (45, None), (45, 100), (5, None)):
        expect = keyed.neighbourhood(ns, "root", 2, t, known_at)
        got = small_scan.neighbourhood(ns, "root", 2, t, known_at)
        assert got == expect, (t, known_at)
    ids = sorted(r["edge_id"] for r in small_scan.neighbourhood(ns, "root", 2, 85))
    assert ids == ["h8", "r-hubby", "r-s1", "r-s2", "s1-x", "s2-y"]
    assert (ns, "hubby") in small_scan._large_subjects and (ns, "s1") not in small_scan._large_subjects
    assert [r["edge_id"] for r in small_scan.neighbourhood(ns, "root", 2, 85, max_edges=4)] == \
        ["r-hubby", "r-s1", "r-s2", "h8"]
