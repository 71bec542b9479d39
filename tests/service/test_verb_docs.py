"""The README's verb table is the one the verb tables generate, and the surface is the tables."""

import numpy as np

from kg.verbs import GRAPH_VERBS
from service.docs import README, verb_table, with_table
from service.root import VERBS
from workers.verbs import CORE_OF_VERB, LEARNING_VERBS, UPDATES


def test_readme_verb_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert verb_table() in text, "stale: run `python -m service.docs`"
    assert with_table(text) == text


def test_every_request_verb_is_in_the_surface_and_the_table() -> None:
    requests = {v.name for v in GRAPH_VERBS} | {v.name for v in LEARNING_VERBS if v.body is not None}
    assert set(VERBS) == requests
    for name in requests:
        assert f"| `{name}` |" in verb_table()


def test_workers_apply_exactly_the_update_entries() -> None:
    assert set(UPDATES) == {v.name for v in LEARNING_VERBS if v.apply is not None}
    assert {CORE_OF_VERB[v] for v in UPDATES} == {"instant", "ewc", "router", "attention", "patterns"}
    assert all(UPDATES[v].core == CORE_OF_VERB[v] for v in UPDATES)


def test_a_new_learning_verb_is_a_core_method_and_one_entry() -> None:
    """What the README shows: one LearningVerb gives the worker its apply and the surface its
    handler and OpenAPI schema (here with an existing core method, ``reset``)."""
    from kg.dispatch import verb_table as join
    from workers import checks
    from workers import requests as rq
    from workers.cores import apply_batch
    from workers.events import Event
    from service.openapi import spec
    from workers.verbs import DISPATCH_VERBS, LearningVerb, _dispatch_verb

    def forget(core, body):
        core.reset()
        return core, {"lr": core.lr}

    entry = LearningVerb("forget_all", "instant", rq.ResetAdapter, apply=forget, check=checks.reset,
                         epoch_bound=True, summary="Forget everything.")
    table = {**UPDATES, entry.name: entry}
    init = Event(1, "a", "init_instant", {"targets": ["x", "y"], "in_dim": 4})
    learned = Event(2, "b", "feedback", {"embedding": [1.0, 0, 0, 0], "model": "x", "payload": {"quality": 1.0},
                                         "now_ms": 0})
    x = np.array([1.0, 0, 0, 0])
    fresh = apply_batch(table, "instant", None, 0, [init]).core.apply(x, None)
    taught = apply_batch(table, "instant", None, 0, [init, learned])
    assert not np.allclose(taught.core.apply(x, None), fresh)
    batch = apply_batch(table, "instant", taught.core, taught.updates, [Event(3, "c", "forget_all", {})])
    assert [r["ok"] for r in batch.results] == [True] and batch.updates == 2
    assert np.allclose(batch.core.apply(x, None), fresh)
    surface = join(DISPATCH_VERBS, [_dispatch_verb(entry)])
    assert surface["forget_all"].async_ok
    doc = spec(surface, api_key=False)
    assert doc["components"]["schemas"]["forget_all_request"]["description"] == "Forget everything."
