"""Concurrent writers on the same ids (RELIABILITY.md, scenario 8): retried, exact, no duplicates."""

from concurrent.futures import ThreadPoolExecutor

from kg.errors import Conflict
from kg.temporal import NewEdge
from kg.usercypher import run_read_only

VERSIONS = ("MATCH ()-[r:FACT]->() WHERE r.ns = $ns "
            "RETURN r.edge_id AS id, r.version AS version, r.sys_to AS sys_to")


def test_racing_inserts_and_invalidations_stay_exact(store, ns):
    edges = [NewEdge(f"e{i}", f"s{i % 3}", f"d{i}", "knows", 1.0, "{}", 10, None, 100) for i in range(30)]

    def insert_all(offset: int) -> int:
        done = 0
        for k in range(len(edges)):
            edge = edges[(k + offset) % len(edges)]
            store.insert_edge(ns, edge)
            done += 1
        return done

    with ThreadPoolExecutor(4) as pool:  # four writers, each inserting all 30 ids
        assert sum(pool.map(insert_all, [0, 7, 14, 21])) == 120

    def invalidate_all(invalid_at: int) -> None:
        for edge in edges:
            store.invalidate_edge(ns, edge.id, invalid_at, 200)

    with ThreadPoolExecutor(3) as pool:  # three invalidations per id, in any order
        list(pool.map(invalidate_all, [50, 40, 60]))

    rows = run_read_only(store.graph, VERSIONS, ns=ns)
    per_id = {}
    for row in rows:
        per_id.setdefault(row["id"], []).append(row["version"])
    assert set(per_id) == {e.id for e in edges}
    for versions in per_id.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))  # no duplicate versions
    for edge in edges:  # the earliest invalidation won, whatever the order
        assert store.get_edge(ns, edge.id)["invalid_at"] == 40
        current = [v for v in store.history(ns, edge.id) if v["sys_to"] is None]
        assert len(current) == 1


def test_racing_different_content_for_one_id(store, ns):
    def insert(dst: str) -> str:
        try:
            store.insert_edge(ns, NewEdge("x", "s", dst, "knows", 1.0, "{}", 10, None, 100))
            return "ok"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(insert, ["a", "b", "c", "d"]))
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 3
    assert len(store.history(ns, "x")) == 1
