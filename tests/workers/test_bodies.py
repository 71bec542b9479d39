"""Request-body validation of the learning verbs (workers.bodies): strict types, finite floats,
sizes and the bounds of learn.limits (refused before anything is allocated), field names."""

from __future__ import annotations

import doctest
import json
import tracemalloc

import pytest

from learn import LearnInputError
from learn import limits as L
from workers import bodies
from workers.bodies import MAX_DIM, MAX_TARGETS, VERBS, validate

NAN = float("nan")
INF = float("inf")
VEC = [0.1, -0.2, 0.3]

VALID = {
    "init_instant": {"targets": ["gpt", "mixtral"]},
    "feedback": {"embedding": VEC, "model": "gpt", "payload": {"quality": 0.8, "signal": "thumbs"}, "now_ms": 1},
    "apply_adapter": {"embedding": VEC, "parts": True},
    "consolidate_adapter": {"min_new_updates": 64},
    "reset_adapter": {},
    "record_loss": {"loss": 0.7},
    "consolidate": {"param_id": "router.model.W", "params": VEC, "grads": VEC},
    "ewc_penalty": {"param_id": "router.model.W", "params": VEC},
    "init_router": {"in_dim": 3, "targets": ["gpt", "mixtral"], "costs": {"gpt": 1.0}, "cost_weight": 0.2},
    "route": {"embedding": VEC, "estimated_tokens": 2000},
    "record_outcome": {"target": "gpt", "quality": 1, "embedding": VEC},
    "init_attention": {"dim": 64},
    "attend": {
        "query": VEC,
        "subgraph": {
            "nodes": {"a": VEC, "b": VEC},
            "edges": [{"src": "a", "dst": "b", "relation": "knows", "weight": 0.5, "t_ms": -5}],
        },
        "now_ms": 10,
    },
    "init_patterns": {"dim": 3, "targets": ["gpt", "mixtral"], "k": 4, "max_trajectories": 64},
    "record_trajectory": {"embedding": VEC, "quality": 0.5,
                          "steps": [{"embedding": VEC, "target": "gpt"}, {"embedding": VEC}]},
    "cluster_patterns": {},
    "find_patterns": {"embedding": VEC, "k": 3},
}


def test_every_learning_verb_has_a_model_and_a_valid_example():
    assert set(VERBS) == set(VALID)
    for verb, body in VALID.items():
        validate(verb, body)
        validate(verb, json.loads(json.dumps(body)))  # as it arrives over the wire


def test_defaults_are_the_reference_values():
    assert validate("init_instant", {"targets": ["a"]}).in_dim == 384
    router = validate("init_router", {"in_dim": 8, "targets": ["a"]})
    assert (router.trained, router.epsilon, router.costs, router.cost_weight) == (False, 0.1, None, 0.0)
    att = validate("init_attention", {"dim": 16})
    assert (att.heads, att.head_dim, att.seed) == (8, None, 0)


def with_(verb: str, **changes):
    body = json.loads(json.dumps(VALID[verb]))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = body
        for key in path:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return body


BAD = [
    # wrong types: no coercion from strings, no booleans for numbers
    ("feedback", with_("feedback", payload__quality="0.8"), "payload.quality"),
    ("feedback", with_("feedback", payload__quality=True), "payload.quality"),
    ("feedback", with_("feedback", embedding="0.1,0.2"), "embedding"),
    ("feedback", with_("feedback", embedding=[0.1, "0.2"]), "embedding.1"),
    ("feedback", with_("feedback", now_ms=1.5), "now_ms"),
    ("feedback", with_("feedback", now_ms="1"), "now_ms"),
    ("feedback", with_("feedback", model=7), "model"),
    ("init_instant", with_("init_instant", in_dim="384"), "in_dim"),
    ("init_router", with_("init_router", trained="yes"), "trained"),
    ("route", with_("route", estimated_tokens=12.5), "estimated_tokens"),
    # NaN / infinity
    ("feedback", with_("feedback", embedding=[0.1, NAN]), "embedding.1"),
    ("apply_adapter", with_("apply_adapter", embedding=[INF]), "embedding.0"),
    ("record_loss", with_("record_loss", loss=NAN), "loss"),
    ("consolidate", with_("consolidate", grads=[0.0, -INF, 1.0]), "grads.1"),
    ("attend", with_("attend", subgraph__nodes={"a": [NAN]}), "subgraph.nodes.a.0"),
    ("attend", with_("attend", subgraph__edges=[{"src": "a", "dst": "b", "weight": INF}]), "subgraph.edges.0.weight"),
    # ranges
    ("feedback", with_("feedback", payload__quality=1.01), "payload.quality"),
    ("record_outcome", with_("record_outcome", quality=-0.5), "quality"),
    ("init_router", with_("init_router", epsilon=1.5), "epsilon"),
    ("init_router", with_("init_router", cost_weight=-1.0), "cost_weight"),
    ("init_router", with_("init_router", costs={"gpt": -1.0}), "costs.gpt"),
    ("route", with_("route", estimated_tokens=-1), "estimated_tokens"),
    ("init_instant", with_("init_instant", in_dim=0), "in_dim"),
    # empty / duplicate / unknown names
    ("init_instant", with_("init_instant", targets=[]), "targets"),
    ("init_instant", with_("init_instant", targets=["a", "a"]), "targets"),
    ("init_instant", with_("init_instant", targets=["a", ""]), "targets.1"),
    ("init_router", with_("init_router", targets=[]), "targets"),
    ("init_router", with_("init_router", costs={"claude": 1.0}), "costs"),
    ("feedback", with_("feedback", embedding=[]), "embedding"),
    ("consolidate", with_("consolidate", param_id=""), "param_id"),
    # cross-field
    ("consolidate", with_("consolidate", grads=[1.0]), "grads"),
    ("init_attention", {"dim": 60}, "head_dim"),
    # missing and unknown fields
    ("feedback", with_("feedback", payload=...), "payload"),
    ("feedback", with_("feedback", payload__quality=...), "payload.quality"),
    ("route", with_("route", bogus=1), "bogus"),
    ("reset_adapter", {"anything": 1}, "anything"),
    ("attend", with_("attend", subgraph__edges=[{"src": "a", "dst": "b", "id": "e1"}]), "subgraph.edges.0.id"),
    # sizes
    ("route", with_("route", embedding=[0.0] * (MAX_DIM + 1)), "embedding"),
    ("init_instant", with_("init_instant", targets=[f"t{i}" for i in range(MAX_TARGETS + 1)]), "targets"),
]


@pytest.mark.parametrize("verb,body,field", BAD, ids=[f"{v}:{f}" for v, _, f in BAD])
def test_bad_bodies_name_the_field(verb, body, field):
    with pytest.raises(LearnInputError) as info:
        validate(verb, body)
    assert info.value.field == field


def test_messages_never_echo_values():
    secret = 987654.321
    with pytest.raises(LearnInputError) as info:
        validate("feedback", with_("feedback", payload__quality=secret))
    assert "987654" not in str(info.value)
    with pytest.raises(LearnInputError) as info:
        validate("feedback", with_("feedback", embedding=[secret, "x"]))
    assert "987654" not in str(info.value)


def test_json_nan_literals_are_refused():
    body = json.loads('{"loss": NaN}')
    with pytest.raises(LearnInputError) as info:
        validate("record_loss", body)
    assert info.value.field == "loss"


def test_unknown_verb_and_non_object_body():
    with pytest.raises(LearnInputError) as info:
        validate("insert_edge", {})
    assert info.value.field == "verb"
    with pytest.raises(LearnInputError) as info:
        validate("route", [1, 2, 3])
    assert info.value.field == "body"


def test_the_module_examples_run():
    result = doctest.testmod(bodies)
    assert result.attempted > 0 and result.failed == 0


# --- the bounds of learn.limits --------------------------------------------------------------


OVERSIZED = [
    ("init_attention", {"dim": 8192}, "dim"),  # the request of the issue: 4 x 8192 x 8192 floats
    ("init_attention", {"dim": 2048}, "dim"),
    ("init_attention", {"dim": 1024, "heads": 16, "head_dim": 128}, "head_dim"),  # 16 x 64 would fit
    ("init_attention", {"dim": 128, "heads": 64, "head_dim": 1024}, "head_dim"),
    ("init_attention", {"dim": 64, "heads": L.MAX_HEADS + 1, "head_dim": 1}, "heads"),
    ("init_attention", {"dim": 64, "head_dim": L.MAX_HEAD_DIM + 1}, "head_dim"),
    ("init_attention", {"dim": L.MAX_DIM + 1, "head_dim": 1}, "dim"),
    ("init_attention", {"dim": 8, "relations": [f"r{i}" for i in range(L.MAX_RELATIONS + 1)]}, "relations"),
    ("init_router", {"in_dim": L.MAX_DIM + 1, "targets": ["a"]}, "in_dim"),
    ("init_router", {"in_dim": 4, "targets": [f"t{i}" for i in range(L.MAX_TARGETS + 1)]}, "targets"),
    ("init_instant", {"in_dim": L.MAX_DIM + 1, "targets": ["a"]}, "in_dim"),
    ("consolidate", {"param_id": "p", "params": [0.0] * (L.MAX_PARAMS + 1),
                     "grads": [0.0] * (L.MAX_PARAMS + 1)}, "params"),
    ("attend", {"query": [0.0] * 512, "now_ms": 0,
                "subgraph": {"nodes": {f"n{i}": [0.0] * 512 for i in range(L.ATTEND_MAX_VALUES // 512 + 1)}}},
     "subgraph.nodes"),
    ("attend", {"query": [0.0], "now_ms": 0, "subgraph": {"nodes": {}, "edges": [
        {"src": "a", "dst": "b"}] * (L.MAX_EDGES + 1)}}, "subgraph.edges"),
    # integers past 64 bits overflowed a float inside the core ("internal error: OverflowError")
    ("attend", {"query": [0.0], "now_ms": 10**400, "subgraph": {"nodes": {}}}, "now_ms"),
    ("attend", {"query": [0.0], "now_ms": 0, "subgraph": {"nodes": {}, "edges": [
        {"src": "a", "dst": "b", "t_ms": -(10**30)}]}}, "subgraph.edges.0.t_ms"),
    ("route", {"embedding": [0.0], "estimated_tokens": 2**64}, "estimated_tokens"),
]


@pytest.mark.parametrize("verb,body,field", OVERSIZED, ids=[f"{v}:{f}:{i}" for i, (v, _, f) in enumerate(OVERSIZED)])
def test_oversized_bodies_are_refused_naming_the_field_before_allocating(verb, body, field):
    tracemalloc.start()
    try:
        with pytest.raises(LearnInputError) as info:
            validate(verb, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.field == field
    assert any(w in info.value.reason for w in ("at most", "less than or equal", "greater than or equal"))
    if verb.startswith("init_"):  # (attend's peak is the copy of its own body)
        assert peak < 1 << 20, "refused without allocating the state"


def test_the_largest_allowed_bodies_are_accepted():
    validate("init_attention", {"dim": 1024})  # 8 heads of 128
    validate("init_attention", {"dim": L.MAX_DIM, "head_dim": 16})  # 8 heads of 16 over 8,192 dims
    validate("init_attention", {"dim": 256, "heads": L.MAX_HEADS, "head_dim": 64,
                                "relations": [f"r{i}" for i in range(L.MAX_RELATIONS)]})
    validate("init_router", {"in_dim": L.MAX_DIM, "targets": [f"t{i}" for i in range(L.MAX_TARGETS)]})
