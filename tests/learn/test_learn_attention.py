"""Graph attention: per-head weights sum to one, dimension filter, relation nudge, recency, residual."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learn import WEEK_MS, GraphAttention, LearnInputError

DIM = 32
NOW = 1_700_000_000_000


def layer_norm(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-5)


def edge(src, dst, relation="knows", weight=1.0, age_ms=0):
    return {"src": src, "dst": dst, "relation": relation, "weight": weight, "t_ms": NOW - age_ms}


@settings(max_examples=30, deadline=None)
@given(
    n_nodes=st.integers(1, 40),
    n_edges=st.integers(0, 60),
    seed=st.integers(0, 2**16),
)
def test_per_head_weights_sum_to_one(n_nodes, n_edges, seed):
    rng = np.random.default_rng(seed)
    att = GraphAttention(dim=DIM, seed=seed % 7, relations=["knows", "works_at"])
    nodes = {f"n{i}": rng.standard_normal(DIM) * 3 for i in range(n_nodes)}
    rels = ["knows", "works_at", "unseen"]
    edges = [
        edge(f"n{rng.integers(n_nodes)}", f"n{rng.integers(n_nodes + 3)}", rels[rng.integers(3)],
             float(rng.random() * 5), int(rng.integers(0, 10 * WEEK_MS)))
        for _ in range(n_edges)
    ]
    vec, weights = att.attend(rng.standard_normal(DIM), nodes, edges, now_ms=NOW)
    w = np.array(list(weights.values()))  # (nodes, heads)
    assert w.shape == (n_nodes, 8)
    assert np.all(w >= 0)
    assert np.allclose(w.sum(axis=0), 1.0, atol=1e-12)
    assert vec.shape == (DIM,) and np.all(np.isfinite(vec))


def test_head_dim_is_dim_over_heads_and_must_divide():
    att = GraphAttention(dim=64)
    assert (att.heads, att.head_dim) == (8, 8)
    with pytest.raises(LearnInputError) as info:
        GraphAttention(dim=60)
    assert info.value.field == "dim"
    assert GraphAttention(dim=60, head_dim=4).head_dim == 4


def test_nodes_of_the_wrong_dimension_are_skipped(rng):
    att = GraphAttention(dim=DIM, seed=1)
    q = rng.standard_normal(DIM)
    good = {"a": rng.standard_normal(DIM), "b": rng.standard_normal(DIM)}
    bad = {"short": rng.standard_normal(DIM - 1), "long": rng.standard_normal(DIM + 5)}
    vec_all, w_all = att.attend(q, {**good, **bad}, [edge("a", "short")], NOW)
    vec_good, w_good = att.attend(q, good, [edge("a", "short")], NOW)
    assert sorted(w_all) == ["a", "b"]
    assert np.array_equal(vec_all, vec_good)
    assert w_all == w_good


def test_no_usable_node_leaves_the_layer_normed_query(rng):
    att = GraphAttention(dim=DIM, seed=1)
    q = rng.standard_normal(DIM) * 4 + 2
    vec, weights = att.attend(q, {"x": [1.0, 2.0]}, [], NOW)
    assert weights == {}
    assert np.allclose(vec, layer_norm(q))


def test_query_residual_carries_the_query_through(rng):
    att = GraphAttention(dim=DIM, seed=2)
    same = rng.standard_normal(DIM)
    nodes = {"a": same, "b": same.copy()}  # identical nodes: the attended value ignores the query
    q1, q2 = rng.standard_normal(DIM) * 5, rng.standard_normal(DIM) * 5
    v1, w1 = att.attend(q1, nodes, [], NOW)
    v2, w2 = att.attend(q2, nodes, [], NOW)
    assert np.allclose(w1["a"], 0.5) and np.allclose(w2["a"], 0.5)
    assert not np.allclose(v1, v2)  # only the residual can tell the two queries apart
    assert abs(float(v1.mean())) < 1e-9 and abs(float(v1.std()) - 1) < 1e-3  # layer-normed
    assert not np.allclose(v1, layer_norm(q1))  # the attended context contributes ...
    att._Wo[:] = 0.0  # ... and without it the output is exactly the normalised query
    v0, _ = att.attend(q1, nodes, [], NOW)
    assert np.allclose(v0, layer_norm(q1))


def test_relation_nudge_shifts_attention(rng):
    att = GraphAttention(dim=DIM, seed=3, relations=["likes", "hates"])
    same = rng.standard_normal(DIM)
    nodes = {"a": same, "b": same.copy()}
    edges = [edge("q", "a", "likes"), edge("q", "b", "hates")]
    att.set_relation_bias("likes", np.full(8, 2.0))
    att.set_relation_bias("hates", np.full(8, -2.0))
    _, w = att.attend(rng.standard_normal(DIM), nodes, edges, NOW)
    assert all(wa > wb for wa, wb in zip(w["a"], w["b"]))
    swapped = [edge("q", "a", "hates"), edge("q", "b", "likes")]
    _, w2 = att.attend(rng.standard_normal(DIM), nodes, swapped, NOW)
    assert np.allclose(w2["a"], w["b"]) and np.allclose(w2["b"], w["a"])


def test_seeded_relation_biases_differ_by_relation():
    att = GraphAttention(dim=DIM, seed=0, relations=["a", "b"])
    assert not np.allclose(att.relation_bias("a"), att.relation_bias("b"))
    assert np.array_equal(att.relation_bias("unknown"), att.relation_bias("other-unknown"))


def test_recent_and_heavy_edges_draw_more_attention(rng):
    att = GraphAttention(dim=DIM, seed=4)
    same = rng.standard_normal(DIM)
    nodes = {"new": same, "old": same.copy()}
    _, w = att.attend(same, nodes, [edge("q", "new", age_ms=0), edge("q", "old", age_ms=8 * WEEK_MS)], NOW)
    assert all(a > b for a, b in zip(w["new"], w["old"]))
    nodes = {"heavy": same, "light": same.copy()}
    _, w = att.attend(same, nodes, [edge("q", "heavy", weight=3.0), edge("q", "light", weight=0.1)], NOW)
    assert all(a > b for a, b in zip(w["heavy"], w["light"]))


def test_recency_is_exp_of_age_over_a_week(rng):
    att = GraphAttention(dim=DIM, seed=4, relations=["r"])
    feats = att._edge_features(["n"], [edge("q", "n", "r", 2.0, age_ms=WEEK_MS)], NOW)
    assert feats[0].tolist() == pytest.approx([1.0, 0.0, np.exp(-1.0), 2.0])
