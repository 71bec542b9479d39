"""``insert_many`` with contradictions and explicit invalidations (``kg ingest`` records): each change
follows its single verb's rule, a bad one is rejected alone, and a contradiction that fails leaves
the edges it lists as they were."""

from __future__ import annotations

from kg.temporal import Contradiction, Cut, NewEdge

T, C = 1_546_300_800_000, 1_600_000_000_000


def edge(id_, src="alice", dst="bob", valid_at=T, created_at=C, relation="knows", weight=1.0):
    return NewEdge(id_, src, dst, relation, weight, "{}", valid_at, None, created_at)


def histories(store, ns, ids):
    return {i: store.history(ns, i) for i in ids}


def test_a_batch_of_changes_ends_as_the_single_verbs_one_by_one_do(store, ns):
    one_by_one = ns + "-single"
    stored = [edge("a"), edge("b", dst="carol"), edge("job1", dst="acme", relation="works_at")]
    store.insert_many(ns, stored)
    store.insert_many(one_by_one, stored)
    d = edge("d", dst="dave", valid_at=T + 20, created_at=C + 2)
    e = edge("e", dst="erin", valid_at=T + 30, created_at=C + 3)
    job2 = edge("job2", dst="initech", relation="works_at", valid_at=T + 40, created_at=C + 5)
    result = store.insert_many(ns, [Cut("a", T + 10, C + 1), Contradiction(d, ("b",)), e, Cut("e", T + 50, C + 4),
                                    Cut("a", T + 5, C + 4), job2])

    store.invalidate_edge(one_by_one, "a", T + 10, C + 1)
    store.contradict(one_by_one, d, ["b"], d.created_at)
    store.insert_edge(one_by_one, e)
    store.invalidate_edge(one_by_one, "e", T + 50, C + 4)
    store.invalidate_edge(one_by_one, "a", T + 5, C + 4)
    store.insert_edge(one_by_one, job2)

    ids = ["a", "b", "d", "e", "job1", "job2"]
    assert histories(store, ns, ids) == histories(store, one_by_one, ids)
    assert store.history(ns, "b")[-1]["invalidated_by"] == "d"
    # a's two cuts, b, e, and job1 cut by job2 (functional); d, e and job2 new
    assert (result.inserted, result.unchanged, result.invalidated, result.rejected) == (3, 0, 5, [])


def test_a_bad_change_is_rejected_alone_and_a_failed_contradiction_cuts_nothing(store, ns):
    store.insert_many(ns, [edge("old"), edge("dup", weight=1.0)])
    # "dup" exists with other content: the contradiction fails at its insert, after cutting "old"
    result = store.insert_many(ns, [Contradiction(edge("dup", weight=2.0, created_at=C + 1), ("old",)),
                                    Cut("missing", T + 1, C + 1), Cut("old", T - 1, C + 1), edge("fresh")])
    reasons = dict(result.rejected)
    assert set(reasons) == {"dup", "missing", "old"} and result.inserted == 1
    assert "different content" in reasons["dup"] and "no edge 'missing'" in reasons["missing"]
    assert reasons["old"].startswith("invalid_at")
    assert [v["valid_to"] for v in store.history(ns, "old")] == [None]
    assert len(store.history(ns, "dup")) == 1 and store.get_edge(ns, "dup")["weight"] == 1.0
    assert store.get_edge(ns, "fresh")["valid_at"] == T


def test_the_same_batch_again_changes_nothing(store, ns):
    store.insert_many(ns, [edge("a"), edge("b", dst="carol")])
    batch = [Contradiction(edge("c", dst="dave", valid_at=T + 5, created_at=C + 1), ("a",)),
             Cut("b", T + 7, C + 2), edge("d", dst="erin")]
    first = store.insert_many(ns, batch)
    before = histories(store, ns, "abcd")
    again = store.insert_many(ns, batch)
    assert (first.inserted, first.invalidated) == (2, 2)
    assert (again.inserted, again.unchanged, again.invalidated, again.rejected) == (0, 3, 0, [])
    assert histories(store, ns, "abcd") == before


def test_changes_read_the_edges_they_name_even_when_the_batch_expects_new_ids(store, ns):
    store.insert_many(ns, [edge("stored"), edge("listed", dst="carol")])
    result = store.insert_many(ns, [edge("new1", dst="dave"), Cut("stored", T + 3, C + 1),
                                    Contradiction(edge("new2", dst="erin", valid_at=T + 4, created_at=C + 2), ("listed",))],
                               expect_new=True)
    assert (result.inserted, result.invalidated, result.rejected) == (2, 2, [])
    assert store.get_edge(ns, "stored")["invalid_at"] == T + 3
    assert store.get_edge(ns, "listed")["invalid_at"] == T + 4
