"""The batch verbs answer exactly what their single forms answer, on both servers.

``query_at_many`` against ``query_at`` question by question, for small subjects (read whole)
and a subject with more versions than ``scan_limit`` (read by time keys), current and
``known_at``; ``invalidate_many`` against ``invalidate_edge`` call by call in a twin namespace.
"""

import random

import pytest

from kg.errors import InvalidInput, NotFound
from kg.store import EdgeStore
from kg.temporal import NewEdge

DAY = 86_400_000


def load(store, ns):
    """Small subjects with a few facts (some invalidated later), and a hub of 40 jobs closing each other."""
    rng = random.Random(3)
    edges = [NewEdge(f"e{i}", f"p{i % 7}", f"p{rng.randrange(7)}", "knows", 1.0, "{}",
                     rng.randrange(100) * DAY, None if i % 3 else (100 + rng.randrange(50)) * DAY, 1_000 + i)
             for i in range(40)]
    edges += [NewEdge(f"job{k}", "hub", f"org{k}", "works_at", 1.0, '{"k":1}', k * 5 * DAY, None, 2_000 + k)
              for k in range(40)]
    store.insert_many(ns, edges)
    for i in range(0, 40, 4):
        store.invalidate_edge(ns, f"e{i}", (150 + i) * DAY, 5_000 + i)
    return edges


def questions():
    rng = random.Random(5)
    subjects = [f"p{k}" for k in range(7)] + ["hub", "nobody"]
    known = [None, 500, 1_010, 1_030, 2_020, 5_010, 5_100, 9_999]
    return [(rng.choice(subjects), rng.randrange(-10, 250) * DAY, rng.choice(known)) for _ in range(120)]


@pytest.mark.parametrize("scan_limit", [64, 3, 0])
def test_query_at_many_answers_as_query_at_does(store, ns, scan_limit):
    load(store, ns)
    reader = EdgeStore(store.graph, store.functional, scan_limit=scan_limit)  # fresh: nothing known large
    asked = questions()
    answers = reader.query_at_many(ns, asked)
    assert len(answers) == len(asked)
    single = EdgeStore(store.graph, store.functional, scan_limit=scan_limit)
    for (src, t, known_at), answer in zip(asked, answers):
        assert answer == single.query_at(ns, src, t, known_at), (src, t, known_at)
    assert sum(map(len, answers)) > 50  # the questions do find facts: not a comparison of empty lists
    assert any(a and a[0]["src"] == "hub" for a in answers)
    if scan_limit == 3:
        assert (ns, "hub") in reader._large_subjects  # the hub was asked by its time keys


def test_query_at_many_again_once_the_hub_is_known_large(store, ns):
    load(store, ns)
    reader = EdgeStore(store.graph, store.functional, scan_limit=8)
    asked = questions()
    first = reader.query_at_many(ns, asked)
    assert (ns, "hub") in reader._large_subjects
    assert reader.query_at_many(ns, asked) == first


def test_invalidate_many_is_invalidate_edge_in_order(store, ns):
    twin = ns + "-twin"
    load(store, ns)
    load(store, twin)
    items = [("e1", 120 * DAY, 6_000), ("e2", 130 * DAY, 6_000), ("e1", 110 * DAY, 6_001),
             ("e4", 400 * DAY, 6_002), ("job39", 300 * DAY, 6_003), ("e5", 10**6 * DAY, 6_004)]
    views = store.invalidate_many(ns, items)
    singles = [store.invalidate_edge(twin, *item) for item in items]
    assert [v | {"namespace": twin} for v in views] == singles
    assert [v["changed"] for v in views] == [x["changed"] for x in singles]
    assert any(v["changed"] for v in views) and not all(v["changed"] for v in views)
    for edge_id in {i for i, _, _ in items}:
        assert store.history(ns, edge_id) == store.history(twin, edge_id)


@pytest.mark.parametrize("bad, error, field", [
    (("missing", 120 * DAY, 6_000), NotFound, "invalidations.1.edge_id"),
    (("e7", -5 * DAY, 6_000), InvalidInput, "invalidations.1.invalid_at"),
    (("e7", 120 * DAY, 10), InvalidInput, "invalidations.1.expired_at"),
])
def test_a_bad_invalidation_changes_nothing_and_names_its_index(store, ns, bad, error, field):
    load(store, ns)
    before = {i: store.history(ns, i) for i in ("e2", "e7")}
    with pytest.raises(error) as err:
        store.invalidate_many(ns, [("e2", 120 * DAY, 6_000), bad])
    assert err.value.field == field
    assert {i: store.history(ns, i) for i in ("e2", "e7")} == before


def endpoints_disagree(store, ns) -> int:
    """FACT versions whose start or end node is not the Entity their src / dst names."""
    return store.graph.read(lambda tx: tx.run(
        "MATCH (a:Entity)-[r:FACT]->(b:Entity) WHERE r.ns = $ns AND (a.ns <> $ns OR b.ns <> $ns"
        " OR a.name <> r.src OR b.name <> r.dst) RETURN count(r) AS n", ns=ns).single()["n"])


def test_bulk_invalidation_is_one_by_one_invalidation_on_both_time_axes(store, ns):
    """500 invalidations in one call against the same one per call in a twin namespace: every
    edge's history, and query_at before, between and after the invalidations' system times."""
    twin = ns + "-twin"
    edges = load(store, ns)
    load(store, twin)
    rng = random.Random(9)
    items = [(e.id, e.valid_at + rng.randrange(0, 300) * DAY, 7_000 + k // 50)
             for k, e in enumerate(rng.choices(edges, k=500))]  # ids repeat: later items see earlier ones
    views = store.invalidate_many(ns, items)
    singles = [store.invalidate_edge(twin, *item) for item in items]
    assert [v | {"namespace": twin} for v in views] == singles
    assert sum(v["changed"] for v in views) > 20 and not all(v["changed"] for v in views)
    for edge in edges:
        assert store.history(ns, edge.id) == store.history(twin, edge.id)
    asked = [(s, t * DAY, k) for s in [f"p{i}" for i in range(7)] + ["hub"]
             for t in range(-5, 400, 45) for k in (None, 1_500, 5_050, 7_000, 7_004, 7_009, 9_999)]
    strip = lambda answers: [[v | {"namespace": None} for v in a] for a in answers]  # noqa: E731
    assert strip(store.query_at_many(ns, asked)) == strip(store.query_at_many(twin, asked))
    assert endpoints_disagree(store, ns) == 0  # the new versions join the old ones' Entity nodes


def walked_by_query_at(store, ns, src, hops, t, known_at, max_edges):
    """The neighbourhood as a client would walk it with ``query_at``: hop by hop, the first edges
    by id that fit in ``max_edges``, their new endpoints the next frontier."""
    seen, frontier, edges = {src}, [src], []
    for _ in range(hops):
        if not frontier or len(edges) >= max_edges:
            break
        found = sorted((v for s in frontier for v in store.query_at(ns, s, t, known_at)), key=lambda v: v["id"])
        frontier = []
        for v in found[:max_edges - len(edges)]:
            edges.append({"src": v["src"], "dst": v["dst"], "relation": v["relation"], "weight": v["weight"],
                          "valid_from": v["valid_at"], "edge_id": v["id"]})
            if v["dst"] not in seen:
                seen.add(v["dst"])
                frontier.append(v["dst"])
        frontier.sort()
    return edges


@pytest.mark.parametrize("scan_limit", [64, 3])
def test_neighbourhoods_answer_as_a_walk_of_query_at_does(store, ns, scan_limit):
    """One call of many walks, and each walk on its own, against the walk a client makes with
    query_at (small subjects read whole; with scan_limit 3 the hub and some others by keys)."""
    load(store, ns)
    rng = random.Random(11)
    known = [None, 500, 1_030, 2_020, 5_010, 9_999]
    asked = [(rng.choice([f"p{k}" for k in range(7)] + ["hub", "nobody"]), rng.randrange(1, 4),
              rng.randrange(-10, 250) * DAY, rng.choice(known)) for _ in range(60)]
    for max_edges in (256, 3):
        reader = EdgeStore(store.graph, store.functional, scan_limit=scan_limit)  # nothing known large
        expected = [walked_by_query_at(store, ns, *question, max_edges) for question in asked]
        assert reader.neighbourhood_many(ns, asked, max_edges) == expected
        assert [reader.neighbourhood(ns, *question, max_edges) for question in asked] == expected
        if max_edges == 256:  # the walks find facts, and some go past the first hop
            assert sum(map(len, expected)) > 40 and max(map(len, expected)) > 3
        assert all(len(edges) <= max_edges for edges in expected)
