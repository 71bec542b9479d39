"""Sealed history (KG_SEALED_THROUGH): a change stamped at or before the seal is refused, and the
answers kept in process are the server's answers, before and after every write that is allowed."""

import random

import pytest

from kg.errors import InvalidInput
from kg.graph import Graph
from kg.store import EdgeStore
from kg.temporal import NewEdge

DAY = 86_400_000
SEAL = 5_000


def load(store, ns):
    rng = random.Random(7)
    edges = [NewEdge(f"e{i}", f"p{i % 6}", f"q{rng.randrange(9)}", "knows", 1.0, "{}",
                     rng.randrange(100) * DAY, None, 1_000 + 50 * i) for i in range(60)]
    edges += [NewEdge(f"job{k}", f"p{k % 3}", f"org{k}", "works_at", 1.0, "{}", k * 7 * DAY, None, 1_100 + 60 * k)
              for k in range(30)]
    store.insert_many(ns, edges)
    for i in range(0, 60, 5):
        store.invalidate_edge(ns, f"e{i}", (120 + i) * DAY, 4_000 + i)
    return edges


def questions(known):
    rng = random.Random(3)
    return [(f"p{rng.randrange(7)}", rng.randrange(-5, 300) * DAY, rng.choice(known)) for _ in range(150)]


def test_changes_stamped_by_the_seal_are_refused_and_write_nothing(store, ns):
    load(store, ns)
    sealed = EdgeStore(store.graph, store.functional, sealed_through=SEAL)
    before = store.history(ns, "e1")
    with pytest.raises(InvalidInput) as err:
        sealed.invalidate_edge(ns, "e1", 200 * DAY, SEAL)
    assert err.value.field == "expired_at"
    with pytest.raises(InvalidInput) as err:
        sealed.insert_edge(ns, NewEdge("late", "p1", "x", "knows", 1.0, "{}", 5 * DAY, None, SEAL))
    assert err.value.field == "created_at"
    result = sealed.insert_many(ns, [NewEdge("late", "p1", "x", "knows", 1.0, "{}", 5 * DAY, None, SEAL - 1),
                                     NewEdge("job0", "p0", "org0", "works_at", 1.0, "{}", 0, None, 1_100)])
    assert (result.inserted, result.unchanged, [i for i, _ in result.rejected]) == (0, 1, ["late"])
    assert store.history(ns, "e1") == before
    with pytest.raises(InvalidInput):
        sealed.invalidate_many(ns, [("e2", 200 * DAY, SEAL + 1), ("e3", 200 * DAY, SEAL)])
    assert sealed.invalidate_edge(ns, "e2", 200 * DAY, SEAL + 1)["changed"]  # after the seal: allowed


def test_kept_answers_are_the_servers_and_no_later_write_changes_them(store, ns):
    load(store, ns)
    kept = ask(Graph(store.graph.settings), store, ns)  # its own driver, closed below
    asked = questions([500, 1_500, 2_600, 4_010, 4_030, SEAL, None, SEAL + 1, 9_000])
    fresh = EdgeStore(store.graph, store.functional, scan_limit=kept.scan_limit)  # no seal: always the server
    assert [kept.query_at(ns, *q) for q in asked] == [fresh.query_at(ns, *q) for q in asked]
    assert len(kept._sealed) >= 6  # the small subjects' sealed history is kept
    sealed_questions = [q for q in asked if q[2] is not None and q[2] <= SEAL]
    later_questions = [q for q in asked if q not in sealed_questions]
    answers = [fresh.query_at(ns, *q) for q in sealed_questions]
    later = [fresh.query_at(ns, *q) for q in later_questions]
    assert sum(map(len, answers)) > 30
    # every write the seal allows, by another store (another process): new facts on the kept
    # subjects, functional cuts of their jobs, invalidations, all stamped after the seal
    writer = EdgeStore(store.graph, store.functional, sealed_through=SEAL)
    writer.insert_many(ns, [NewEdge(f"n{i}", f"p{i % 6}", "z", "knows", 2.0, "{}", i * DAY, None, SEAL + 1 + i)
                            for i in range(20)])
    writer.insert_many(ns, [NewEdge(f"newjob{k}", f"p{k}", "neworg", "works_at", 1.0, "{}", 3 * DAY, None,
                                    SEAL + 100 + k) for k in range(3)])
    writer.invalidate_many(ns, [(f"e{i}", (110 + i) * DAY, SEAL + 200) for i in range(1, 60, 3)])
    assert [fresh.query_at(ns, *q) for q in later_questions] != later  # the writes do change answers
    assert [fresh.query_at(ns, *q) for q in sealed_questions] == answers  # but none about sealed history
    kept.graph.close()  # kept answers come from memory: the closed driver is never asked
    assert [kept.query_at(ns, *q) for q in sealed_questions] == answers
    assert kept.query_at_many(ns, sealed_questions) == answers
    late = ask(Graph(store.graph.settings), store, ns)  # sealed history read after the writes
    late.graph.close()
    assert [late.query_at(ns, *q) for q in sealed_questions] == answers


def ask(graph, store, ns):
    """A sealed store on ``graph`` that has read the sealed history of p0-p6 once."""
    kept = EdgeStore(graph, store.functional, sealed_through=SEAL)
    for k in range(7):
        kept.query_at(ns, f"p{k}", 0, SEAL)
    return kept


def test_answers_after_the_seal_still_see_later_writes(store, ns):
    load(store, ns)
    sealed = EdgeStore(store.graph, store.functional, sealed_through=SEAL)
    assert sealed.query_at(ns, "p1", 50 * DAY, SEAL + 10) == sealed.query_at(ns, "p1", 50 * DAY, SEAL)
    sealed.insert_edge(ns, NewEdge("after", "p1", "y", "knows", 1.0, "{}", 0, None, SEAL + 5))
    after = [v["id"] for v in sealed.query_at(ns, "p1", 50 * DAY, SEAL + 10)]
    assert "after" in after and "after" not in [v["id"] for v in sealed.query_at(ns, "p1", 50 * DAY, SEAL)]
    assert "after" in [v["id"] for v in sealed.query_at(ns, "p1", 50 * DAY)]
