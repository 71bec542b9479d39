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
