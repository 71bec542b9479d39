"""MicroLoRA invariants: convergence, norm bound, LR floor, neutral no-op, replay, reset, EWC, input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learn import MicroLoRA, to_bytes


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def joint_norm(lora: MicroLoRA) -> float:
    p = lora.params()
    return math.sqrt(float(np.sum(p["A"] ** 2) + np.sum(p["B"] ** 2)))


def margin(lora: MicroLoRA, x: np.ndarray, target: int) -> float:
    logits = lora.apply(x)
    others = np.delete(logits, target)
    return float(logits[target] - others.max())


def test_positive_feedback_raises_the_target_relative_to_the_others(rng):
    lora = MicroLoRA(targets=["a", "b", "c"], in_dim=32, seed=3)
    x = unit(rng, 32)
    margins = []
    for step in range(1, 301):
        lora.learn(x, "b", quality=1.0)
        if step % 100 == 0:
            margins.append(margin(lora, x, 1))
    assert margins[0] > 0
    assert margins[0] < margins[1] < margins[2]


def test_negative_feedback_lowers_the_target(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=16, seed=1)
    x = unit(rng, 16)
    for _ in range(200):
        lora.learn(x, "a", quality=0.0)
    logits = lora.apply(x)
    assert logits[0] < logits[1]


def test_learning_generalises_to_similar_inputs_not_to_orthogonal_ones(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=64, seed=0)
    x = unit(rng, 64)
    for _ in range(300):
        lora.learn(x, "a", quality=1.0)
    near = unit(rng, 64) * 0.1 + x
    ortho = unit(rng, 64)
    ortho -= (ortho @ x) * x
    assert margin(lora, near, 0) > 0.5 * margin(lora, x, 0)
    assert abs(margin(lora, ortho, 0)) < 0.5 * margin(lora, x, 0)


def test_b_starting_at_zero_does_not_stall(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    x = unit(rng, 8)
    assert np.all(lora.params()["B"] == 0)
    assert np.all(lora.apply(x) == 0)
    lora.learn(x, "a", quality=1.0)
    assert np.any(lora.params()["B"] != 0)
    assert lora.apply(x)[0] > 0
    a_before = lora.params()["A"]
    lora.learn(x, "a", quality=1.0)
    assert np.any(lora.params()["A"] != a_before), "A must move once B is non-zero"


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.1, 1e3),
    qualities=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
)
def test_joint_norm_never_exceeds_max_norm(scale, qualities, seed):
    rng = np.random.default_rng(seed)
    lora = MicroLoRA(targets=["a", "b", "c"], in_dim=16, seed=seed)
    for q in qualities:
        lora.learn(rng.standard_normal(16) * scale, ["a", "b", "c"][rng.integers(3)], q)
        assert joint_norm(lora) <= lora.max_norm * (1 + 1e-12)


def test_norm_clamp_is_active_under_large_inputs(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=16, seed=0)
    for _ in range(50):
        lora.learn(rng.standard_normal(16) * 100, "a", 1.0)
    assert joint_norm(lora) == pytest.approx(lora.max_norm, rel=1e-9)


def test_learning_rate_decays_to_its_floor_and_stays_there(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    x = unit(rng, 8)
    seen = [lora.lr]
    for _ in range(1000):
        lora.learn(x, "a", 0.9)
        seen.append(lora.lr)
    assert seen[0] == lora.lr0
    assert all(b <= a for a, b in zip(seen, seen[1:]))
    assert min(seen) == lora.lr_min
    assert seen[10] == pytest.approx(lora.lr0 * lora.lr_decay**10)
    # 0.01 * 0.995^k reaches 1e-3 after about 460 updates
    assert seen.index(lora.lr_min) == math.ceil(math.log(0.1) / math.log(0.995))


@pytest.mark.parametrize("quality", [0.5, 0.50009, 0.49991])
def test_neutral_feedback_is_a_no_op(rng, quality):
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    x = unit(rng, 8)
    for _ in range(5):
        lora.learn(x, "a", 1.0)
    before = to_bytes(lora)
    lora.learn(x, "b", quality)
    assert to_bytes(lora) == before
    lora.learn(x, "b", 0.5002)  # just outside the neutral band
    assert to_bytes(lora) != before


def test_replay_starts_at_replay_min_and_buffer_is_bounded():
    xs = [unit(np.random.default_rng(i), 8) for i in range(4)]

    def run(replay_min):
        lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0, replay_min=replay_min)
        trajectory = []
        for x in xs:
            lora.learn(x, "a", 1.0)
            trajectory.append(lora.params()["B"].copy())
        return lora, trajectory

    with_replay, a = run(4)
    _, b = run(1000)
    for i in range(3):  # fewer than replay_min entries: no replay, identical trajectories
        assert np.array_equal(a[i], b[i])
    assert not np.array_equal(a[3], b[3]), "the 4th update must add a replay step"
    rng = np.random.default_rng(0)
    for _ in range(100):
        with_replay.learn(unit(rng, 8), "b", 0.0)
    assert with_replay.replay_len == with_replay.replay_size == 64


def test_reset_returns_to_the_fresh_adapter(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=5)
    fresh = to_bytes(lora)
    for _ in range(20):
        lora.learn(unit(rng, 8), "a", 1.0)
    assert lora.lr < lora.lr0
    lora.reset()
    assert lora.lr == lora.lr0 and lora.updates == 0 and lora.replay_len == 0
    assert np.all(lora.apply(unit(rng, 8)) == 0)
    assert to_bytes(lora) == fresh
    lora.learn(unit(rng, 8), "a", 1.0)  # and it still learns after a reset
    assert np.any(lora.params()["B"] != 0)


def test_ewc_anchor_limits_drift_from_the_snapshot(rng):
    def drift(ewc_lambda):
        lora = MicroLoRA(targets=["a", "b"], in_dim=16, seed=0, ewc_lambda=ewc_lambda)
        x1, x2 = unit(rng, 16), unit(rng, 16)
        for _ in range(100):
            lora.learn(x1, "a", 1.0)
        snap = lora.params()
        lora.anchor({"A": np.ones((2, 16)), "B": np.ones((2, 2))})
        for _ in range(100):
            lora.learn(x2, "b", 1.0)
        now = lora.params()
        return math.sqrt(sum(float(np.sum((now[k] - snap[k]) ** 2)) for k in now))

    free, anchored = drift(0.0), drift(50.0)
    assert anchored < 0.5 * free


def test_apply_adds_to_given_logits(rng):
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    x = unit(rng, 8)
    for _ in range(10):
        lora.learn(x, "a", 1.0)
    base = np.array([0.25, -1.0])
    assert np.allclose(lora.apply(x, base), base + lora.apply(x))
    assert lora.apply(x).shape == (2,)
