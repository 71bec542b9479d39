"""The Graphiti contradiction scenario on both time axes, against the real graph server."""

from kg.temporal import NewEdge

T1, T2 = 1_546_300_800_000, 1_622_505_600_000  # 2019-01-01, 2021-06-01
LEARNED_ACME, LEARNED_GLOBEX = T1 + 86_400_000, T2 + 9 * 86_400_000
EPS = 1


def edge(id_, dst, valid_at, created_at, relation="works_at", invalid_at=None):
    return NewEdge(id_, "alice", dst, relation, 1.0, "{}", valid_at, invalid_at, created_at)


def dsts(views):
    return [v["dst"] for v in views]


def test_contradiction_on_both_axes(store, ns):
    store.insert_edge(ns, edge("acme", "Acme", T1, LEARNED_ACME))
    out = store.contradict(ns, edge("globex", "Globex", T2, LEARNED_GLOBEX), ["acme"], LEARNED_GLOBEX)
    assert out["invalidated"][0]["invalid_at"] == T2
    assert out["invalidated"][0]["invalidated_by"] == "globex"

    assert dsts(store.query_at(ns, "alice", T1 + EPS)) == ["Acme"]
    assert dsts(store.query_at(ns, "alice", T2 + EPS)) == ["Globex"]
    # before we learned of the move, we believed Alice was still at Acme
    assert dsts(store.query_at(ns, "alice", T2 + EPS, known_at=LEARNED_GLOBEX - 1)) == ["Acme"]
    # before we learned anything, we knew nothing
    assert store.query_at(ns, "alice", T1 + EPS, known_at=LEARNED_ACME - 1) == []
    assert dsts(store.query_at(ns, "alice", T2 + EPS, known_at=LEARNED_GLOBEX)) == ["Globex"]

    versions = store.history(ns, "acme")
    assert [(v["version"], v["valid_to"], v["sys_from"], v["sys_to"]) for v in versions] == [
        (1, None, LEARNED_ACME, LEARNED_GLOBEX),
        (2, T2, LEARNED_GLOBEX, None),
    ]
    assert versions[1]["invalidated_by"] == "globex"
    assert [v["version"] for v in store.history(ns, "globex")] == [1]


def test_flat_view_is_seed_compatible(store, ns):
    store.insert_edge(ns, edge("acme", "Acme", T1, LEARNED_ACME))
    view = store.get_edge(ns, "acme")
    assert {"id", "src", "dst", "relation", "valid_at", "invalid_at", "created_at", "expired_at"} <= set(view)
    assert (view["valid_at"], view["invalid_at"], view["created_at"], view["expired_at"]) == (
        T1, None, LEARNED_ACME, None)
    store.invalidate_edge(ns, "acme", T2, LEARNED_GLOBEX)
    view = store.get_edge(ns, "acme")
    assert (view["valid_at"], view["invalid_at"], view["created_at"], view["expired_at"]) == (
        T1, T2, LEARNED_ACME, LEARNED_GLOBEX)
