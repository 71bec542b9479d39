"""Request-body validation of the learning verbs: strict types, finite floats, sizes, field names."""

from __future__ import annotations

import json

import pytest

from learn import VERBS, LearnInputError, validate
from learn.schemas import MAX_DIM, MAX_TARGETS

NAN = float("nan")
INF = float("inf")
VEC = [0.1, -0.2, 0.3]

VALID = {
    "init_instant": {"targets": ["gpt", "mixtral"]},
    "feedback": {"embedding": VEC, "model": "gpt", "payload": {"quality": 0.8, "signal": "thumbs"}, "now_ms": 1},
    "apply_adapter": {"embedding": VEC},
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
