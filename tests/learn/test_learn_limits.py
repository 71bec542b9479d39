"""Size bounds (learn.limits): a state of the largest allowed size fits the documented budget
(issue 12 item 2: ``init_attention`` with ``dim: 8192`` grew a worker to 15 GB). That oversized
bodies are refused before anything is allocated is tested with the bodies, in
tests/workers/test_bodies.py."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from learn import EWC, FastGRNNRouter, GraphAttention, LearnInputError, MicroLoRA, from_bytes, to_bytes
from learn import limits as L

HEADER = 1 << 16  # the safetensors JSON header (settings, names, shapes) is well below this


def _peak(build):
    """(result, peak traced bytes) of ``build()``: memory, not time."""
    tracemalloc.start()
    try:
        out = build()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def _largest_states():
    targets = [f"t{i}" for i in range(L.MAX_TARGETS)]
    relations = [f"r{i}" for i in range(L.MAX_RELATIONS)]

    def router():
        r = FastGRNNRouter(in_dim=L.MAX_DIM, targets=targets, seed=0)
        g = r.grads(np.ones(L.MAX_DIM), "t1", 0.5)
        r.anchor({k: v * v for k, v in g.items()})  # every learned array with a Fisher and a snapshot
        return r, L.state_bytes("router", in_dim=L.MAX_DIM, targets=L.MAX_TARGETS)

    def attention():
        heads, head_dim = L.MAX_HEADS, L.ATTENTION_MAX_WEIGHTS // (L.MAX_HEADS * 256)
        a = GraphAttention(dim=256, heads=heads, head_dim=head_dim, relations=relations)
        return a, L.state_bytes("attention", dim=256, heads=heads, head_dim=head_dim, relations=L.MAX_RELATIONS)

    def ewc():
        e = EWC()
        for i in range(L.EWC_MAX_VALUES // L.MAX_PARAMS):
            e.consolidate(f"p{i}", np.ones(L.MAX_PARAMS), np.ones(L.MAX_PARAMS))
        return e, L.state_bytes("ewc", values=L.EWC_MAX_VALUES)

    def instant():
        return (MicroLoRA(targets=targets, in_dim=L.MAX_DIM),
                L.state_bytes("instant", in_dim=L.MAX_DIM, targets=L.MAX_TARGETS))

    return {"router": router, "attention": attention, "ewc": ewc, "instant": instant}


@pytest.mark.parametrize("kind", ["router", "attention", "ewc", "instant"])
def test_a_state_of_the_largest_allowed_size_fits_the_budget(kind):
    (core, estimate), peak = _peak(lambda: (lambda c, e: (c, e, to_bytes(c)))(*_largest_states()[kind]())[:2])
    blob = to_bytes(core)
    assert estimate <= len(blob) <= estimate + HEADER, "state_bytes is what the docs quote"
    assert len(blob) <= L.STATE_BUDGET_BYTES
    assert peak <= 5 * L.STATE_BUDGET_BYTES, "building and serialising it stays within a few states"
    assert to_bytes(from_bytes(blob, kind)) == blob


def test_ewc_refuses_growth_past_its_bounds_and_keeps_its_state():
    e = EWC()
    for i in range(L.EWC_MAX_VALUES // L.MAX_PARAMS):
        e.consolidate(f"p{i}", np.ones(L.MAX_PARAMS), np.ones(L.MAX_PARAMS))
    before = to_bytes(e)
    with pytest.raises(LearnInputError) as info:
        e.consolidate("one-more", [1.0], [1.0])
    assert info.value.field == "params"
    assert to_bytes(e) == before
    e.consolidate("p0", np.zeros(L.MAX_PARAMS), np.ones(L.MAX_PARAMS))  # a held id may be updated
    assert e.values == L.EWC_MAX_VALUES

    small = EWC()
    for i in range(L.EWC_MAX_KEYS):
        small.consolidate(f"k{i}", [1.0], [1.0])
    with pytest.raises(LearnInputError) as info:
        small.consolidate("k-extra", [1.0], [1.0])
    assert info.value.field == "param_id" and small.fisher_keys == L.EWC_MAX_KEYS


def test_the_attention_bound_is_the_product_of_its_sizes():
    assert L.attention_weights(1024, 8, 128) == L.ATTENTION_MAX_WEIGHTS
    assert L.state_bytes("attention", dim=1024, heads=8, head_dim=128) <= L.STATE_BUDGET_BYTES
    # what the request would have allocated, for the record: 2 GiB of weights
    assert L.state_bytes("attention", dim=8192, heads=8, head_dim=1024) > 50 * L.STATE_BUDGET_BYTES
