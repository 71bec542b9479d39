"""The base adapter of the instant core: distillation maths (:mod:`learn.base_lora`), the core's
``consolidate``, and the layout-5 upgrade of instant blobs written before it existed."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from learn import LearnInputError, MicroLoRA, from_bytes, to_bytes
from learn.base_lora import Base, distil, fit

DATA = pathlib.Path(__file__).parent / "data"
KW = {"micro_scale": 0.0, "lam": 1.0, "fisher_decay": 0.9, "ridge": 1e-6, "max_norm": 1e6}


def units(rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    x = rng.standard_normal((m, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def trained(seed: int = 0, n: int = 40, **settings) -> MicroLoRA:
    rng = np.random.default_rng(seed)
    lora = MicroLoRA(targets=["a", "b", "c"], in_dim=16, seed=seed, **settings)
    for i in range(n):
        lora.learn(units(rng, 1, 16)[0], "abc"[i % 3], float(rng.random()))
    return lora


def replay_inputs(lora: MicroLoRA) -> np.ndarray:
    return lora.to_state().arrays["replay_x"][: lora.replay_len]


# --- the maths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_after_a_consolidation_base_plus_micro_answer_what_the_combined_adapter_did(scale):
    """Without the pull (base_lambda 0) the fit is least squares on the replay inputs; with it,
    the answers stay closer than the shrunk micro adapter alone would leave them."""
    for lam in (0.0, 1.0):
        lora = trained(base_micro_scale=scale, base_ridge=1e-6, base_lambda=lam)
        lora.consolidate()  # a first one, so that the second starts from a non-zero base
        for _ in range(5):
            lora.learn(units(np.random.default_rng(7), 1, 16)[0], "b", 0.9)
        X = replay_inputs(lora)
        before = np.array([lora.apply(x) for x in X])
        B_before = lora.params()["B"]
        micro_before = np.array([lora.apply_parts(x)[1] for x in X])
        lora.consolidate()
        after = np.array([lora.apply(x) for x in X])
        base, micro = (np.array(p) for p in zip(*(lora.apply_parts(x) for x in X)))
        assert np.array_equal(lora.params()["B"], scale * B_before)  # the micro adapter shrank
        if lam == 0.0:  # least squares over the replay inputs: a small residual
            assert np.linalg.norm(after - before) <= 1e-3 * np.linalg.norm(before)
        # shrinking the micro adapter alone would have moved the answers by (1 - scale) * micro
        assert np.linalg.norm(after - before) < 0.5 * (1 - scale) * np.linalg.norm(micro_before)
        assert np.linalg.norm(base) > 0.5 * np.linalg.norm(before)
        assert lora.consolidations == 2 and lora.pending_updates == 0


def test_the_ewc_pull_keeps_what_an_earlier_consolidation_learned():
    """Two consolidations on different inputs: with the pull, the first inputs' answers move less."""
    rng = np.random.default_rng(3)
    d, n = 24, 3
    first, second = units(rng, 16, d), units(rng, 16, d)  # 32 inputs in 24 dimensions: they overlap
    micro1, micro2 = rng.standard_normal((d, n)), rng.standard_normal((d, n))
    moved = {}
    for lam in (0.0, 1.0, 10.0):
        base1 = distil(Base.zeros(8, d, n), micro1, first, **{**KW, "lam": lam})
        base2 = distil(base1, micro2, second, **{**KW, "lam": lam})
        moved[lam] = float(np.linalg.norm(first @ base2.matrix() - first @ base1.matrix()))
        # the second consolidation still learns its own inputs, less closely with more pull
        target = second @ (base1.matrix() + micro2)
        assert np.linalg.norm(second @ base2.matrix() - target) < np.linalg.norm(second @ base1.matrix() - target)
    assert moved[10.0] < moved[1.0] < moved[0.0]
    assert moved[10.0] < 0.5 * moved[0.0]


def test_the_importance_accumulates_and_decays():
    rng = np.random.default_rng(1)
    X1, X2 = units(rng, 5, 6), units(rng, 7, 6)
    base = distil(Base.zeros(8, 6, 2), rng.standard_normal((6, 2)), X1, **{**KW, "fisher_decay": 0.5})
    assert np.allclose(base.fisher, (X1 ** 2).sum(axis=0))
    base = distil(base, rng.standard_normal((6, 2)), X2, **{**KW, "fisher_decay": 0.5})
    assert np.allclose(base.fisher, 0.5 * (X1 ** 2).sum(axis=0) + (X2 ** 2).sum(axis=0))


def test_the_rank_is_cut_by_truncated_svd_and_the_norm_clamped():
    rng = np.random.default_rng(2)
    d, n, rank = 20, 12, 3
    X, micro = units(rng, 16, d), rng.standard_normal((d, n))
    base = distil(Base.zeros(rank, d, n), micro, X, **KW)
    full = fit(micro, X, KW["ridge"], np.zeros(d), np.zeros((d, n)))
    assert np.array_equal(full, micro)  # no earlier base to pull toward: the combined adapter itself
    U, S, Vt = np.linalg.svd(full, full_matrices=False)
    best = (U[:, :rank] * S[:rank]) @ Vt[:rank]  # Eckart-Young: the closest rank-3 matrix
    assert np.linalg.matrix_rank(base.matrix()) == rank
    assert np.allclose(base.matrix(), best)
    clamped = distil(Base.zeros(rank, d, n), micro, X, **{**KW, "max_norm": 1.0})
    assert np.isclose(np.sqrt(np.sum(clamped.A ** 2) + np.sum(clamped.B ** 2)), 1.0)
    assert np.allclose(clamped.matrix(), best / np.sqrt(np.sum(base.A ** 2) + np.sum(base.B ** 2)) ** 2)


def test_fit_is_the_least_squares_minimiser():
    """Woodbury in the input space gives the normal equations' solution."""
    rng = np.random.default_rng(4)
    X, T, W0 = rng.standard_normal((5, 9)), rng.standard_normal((9, 2)), rng.standard_normal((9, 2))
    pull, ridge = rng.random(9), 0.3
    pull[2] = 0.0
    direct = np.linalg.solve(X.T @ X + ridge * np.eye(9) + np.diag(pull),
                             X.T @ X @ T + ridge * T + pull[:, None] * W0)
    assert np.allclose(fit(T, X, ridge, pull, W0), direct)


def test_distillation_is_deterministic():
    rng = np.random.default_rng(5)
    X, micro = units(rng, 10, 8), rng.standard_normal((8, 2))
    a, b = (distil(Base.zeros(8, 8, 2), micro, X, **KW) for _ in range(2))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("A", "B", "fisher"))
    one, two = trained(9), trained(9)
    one.consolidate()
    two.consolidate()
    assert to_bytes(one) == to_bytes(two)


@pytest.mark.parametrize("field, change", [
    ("inputs", {"X": np.ones((3, 5))}),
    ("inputs", {"X": np.ones((0, 6))}),
    ("inputs", {"X": np.full((3, 6), np.nan)}),
    ("micro", {"micro": np.ones((6, 3))}),
    ("micro_scale", {"micro_scale": 1.5}),
    ("lam", {"lam": -1.0}),
    ("fisher_decay", {"fisher_decay": float("nan")}),
    ("ridge", {"ridge": 0.0}),
    ("max_norm", {"max_norm": "1"}),
])
def test_bad_input_names_its_field(field, change):
    args = {"X": np.ones((3, 6)), "micro": np.ones((6, 2)), **KW, **change}
    X, micro = args.pop("X"), args.pop("micro")
    with pytest.raises(LearnInputError) as info:
        distil(Base.zeros(8, 6, 2), micro, X, **args)
    assert info.value.field == field


# --- the core -----------------------------------------------------------------------------------


def test_a_consolidation_waits_for_enough_inputs_and_new_updates():
    lora = trained(n=5, base_min_inputs=8)
    blob = to_bytes(lora)
    lora.consolidate()  # 5 buffered inputs: too few
    assert to_bytes(lora) == blob and lora.consolidations == 0
    lora = trained(n=20)
    lora.consolidate(min_new_updates=21)
    assert lora.consolidations == 0
    lora.consolidate(min_new_updates=20)
    assert lora.consolidations == 1 and lora.consolidated_at == 20
    blob = to_bytes(lora)
    lora.consolidate(min_new_updates=1)  # queued twice: the second finds nothing new
    assert to_bytes(lora) == blob


def test_a_fresh_core_answers_as_the_micro_adapter_alone():
    lora = trained()
    x = units(np.random.default_rng(8), 1, 16)[0]
    base, micro = lora.apply_parts(x)
    assert not base.any() and np.array_equal(lora.apply(x), micro)
    lora.reset()
    assert lora.consolidations == 0 and not lora.params()["base_A"].any()


def test_feedback_after_a_consolidation_moves_only_the_micro_adapter():
    lora = trained()
    lora.consolidate()
    base = {k: v for k, v in lora.params().items() if k.startswith("base_")}
    lora.learn(units(np.random.default_rng(6), 1, 16)[0], "a", 1.0)
    assert all(np.array_equal(lora.params()[k], v) for k, v in base.items())
    assert lora.params()["B"].any()


# --- layout 5: instant blobs written before the base adapter ----------------------------------------


def test_a_version_4_instant_blob_answers_and_learns_on_as_that_release_did():
    old = json.loads((DATA / "v4-answers.json").read_text())
    blob = (DATA / "v4-instant.safetensors").read_bytes()
    assert b'"schema_version":"4"' in blob
    lora = from_bytes(blob, "instant")
    probe = np.array(old["probe"])
    assert np.allclose(lora.apply(probe, [0.5, -0.5, 0.0]), old["apply"], rtol=1e-12, atol=0.0)
    assert {k: v for k, v in lora.settings().items() if not k.startswith("base_")} == old["settings"]
    assert lora.updates == old["updates"] and lora.consolidations == 0
    assert not lora.params()["base_A"].any() and not lora.params()["base_B"].any()
    for x, t, q in old["later"]:
        lora.learn(x, t, q)
    assert np.allclose(lora.apply(probe), old["apply_after"], rtol=1e-12, atol=0.0)
    assert lora.lr == old["lr_after"]
    for name in ("A", "B"):
        assert np.allclose(lora.params()[name], old["params_after"][name], rtol=1e-12, atol=0.0)
    new = to_bytes(lora)
    assert b'"schema_version":"7"' in new and to_bytes(from_bytes(new, "instant")) == new
    lora.consolidate()  # and the upgraded core consolidates like any other
    assert lora.consolidations == 1 and lora.params()["base_B"].any()


def test_an_instant_blob_without_its_base_arrays_is_refused_in_the_current_layout():
    from learn import StateError

    lora = trained()
    state = lora.to_state()
    del state.arrays["base_fisher"]
    with pytest.raises(StateError, match="base_fisher"):
        MicroLoRA.from_state(state)
    state = lora.to_state()
    state.scalars["consolidated_at"] = lora.updates + 1
    with pytest.raises(StateError, match="consolidation counters"):
        MicroLoRA.from_state(state)
    lora.consolidate()
    state = lora.to_state()
    state.scalars["consolidations"] = 0  # apply skips the base until a consolidation: it must be zero
    with pytest.raises(StateError, match="base is not zero"):
        MicroLoRA.from_state(state)


def test_without_the_pull_nothing_the_micro_adapter_learnt_is_lost_off_the_buffered_inputs():
    """lam 0: the new base is the previous one plus the micro's part, also where the buffer does
    not reach (what the micro adapter learnt from inputs that have left it)."""
    rng = np.random.default_rng(7)
    d, n = 30, 2
    X = units(rng, 6, d)  # 6 inputs in 30 dimensions
    base = distil(Base.zeros(8, d, n), rng.standard_normal((d, n)), units(rng, 6, d), **KW)
    micro = rng.standard_normal((d, n))
    new = distil(base, micro, X, **{**KW, "lam": 0.0, "micro_scale": 0.5})
    assert np.allclose(new.matrix(), base.matrix() + 0.5 * micro)
    probe = units(rng, 50, d)  # inputs the consolidation never saw
    assert np.allclose(probe @ new.matrix(), probe @ (base.matrix() + 0.5 * micro))
