"""What ``insert_many`` reports: each invalidation it made is counted once, wherever the cut version was stored."""

from kg.temporal import NewEdge


def job(id_, valid_at, created_at, src="alice"):
    return NewEdge(id_, src, f"org-{id_}", "works_at", 1.0, "{}", valid_at, None, created_at)


def closed_versions(store, ns, ids):
    return sum(1 for i in ids for v in store.history(ns, i) if v["sys_to"] is not None)


def test_cutting_a_fact_stored_by_an_earlier_batch_counts_once(store, ns):
    assert store.insert_many(ns, [job("j1", 10, 100)]).invalidated == 0
    result = store.insert_many(ns, [job("j2", 20, 200)])
    assert (result.inserted, result.invalidated) == (1, 1)
    assert closed_versions(store, ns, ["j1", "j2"]) == 1


def test_cutting_a_fact_of_the_same_batch_counts_once(store, ns):
    result = store.insert_many(ns, [job("j1", 10, 100), job("j2", 20, 200)])
    assert (result.inserted, result.invalidated) == (2, 1)


def test_a_later_stored_fact_cutting_the_new_one_counts_once(store, ns):
    store.insert_many(ns, [job("late", 20, 100)])
    result = store.insert_many(ns, [job("early", 10, 200)])
    assert (result.inserted, result.invalidated) == (1, 1)
    assert store.get_edge(ns, "early")["invalid_at"] == 20


def test_counts_over_many_batches_match_the_closed_versions(store, ns):
    ids, invalidated = [], 0
    for k in range(4):
        batch = [job(f"{s}-{k}", 10 * k, 100 + k, src=s) for s in ("a", "b", "c")]
        ids += [e.id for e in batch]
        invalidated += store.insert_many(ns, batch).invalidated
    assert invalidated == closed_versions(store, ns, ids) == 9
