"""EWC++ invariants: bounded Fisher EMA, zero penalty at the snapshot, boundary detection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learn import EWC

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=40))
def test_fisher_ema_stays_between_zero_and_the_largest_squared_gradient(grads):
    ewc = EWC()
    peak = np.zeros(3)
    for g in grads:
        ewc.consolidate("p", [0.0, 0.0, 0.0], g)
        peak = np.maximum(peak, np.square(g))
        f = ewc.fisher("p")
        assert np.all(f >= 0)
        assert np.all(f <= peak * (1 + 1e-12))


def test_fisher_ema_follows_the_reference_recursion():
    ewc = EWC()
    g = np.array([2.0, -1.0])
    expected = np.zeros(2)
    for _ in range(50):
        ewc.consolidate("w", [1.0, 1.0], g)
        expected = 0.999 * expected + 0.001 * g * g
    assert np.allclose(ewc.fisher("w"), expected, rtol=1e-12)
    assert np.allclose(ewc.fisher("w"), (1 - 0.999**50) * g * g)


def test_penalty_is_zero_at_the_snapshot_and_quadratic_away_from_it():
    ewc = EWC()
    ewc.consolidate("w", [0.5, -2.0, 3.0], [1.0, 2.0, 0.0])
    snap = ewc.snapshot("w")
    assert ewc.penalty("w", snap) == 0.0
    f = ewc.fisher("w")
    d = np.array([0.1, -0.3, 5.0])
    p1 = ewc.penalty("w", snap + d)
    assert p1 == pytest.approx(2000.0 * np.sum(f * d * d))
    assert ewc.penalty("w", snap + 2 * d) == pytest.approx(4 * p1)
    assert ewc.penalty("w", snap + [0.0, 0.0, 100.0]) == 0.0  # no Fisher, no penalty
    assert ewc.penalty_grad("w", snap + d) == pytest.approx(2 * 2000.0 * f * d)


def test_penalty_of_an_unknown_id_is_zero_and_keys_are_counted():
    ewc = EWC()
    assert ewc.penalty("never", [1.0, 2.0]) == 0.0
    ewc.consolidate("a", [1.0], [1.0])
    ewc.consolidate("b", [[1.0, 2.0]], [[1.0, 1.0]])
    ewc.consolidate("a", [2.0], [1.0])
    assert ewc.fisher_keys == 2
    assert ewc.param_ids() == ["a", "b"]


def test_boundary_never_fires_during_warm_up():
    ewc = EWC()
    assert [ewc.record_loss(x) for x in (1.0, 1000.0, -50.0)] == [False, False, False]
    assert ewc.boundaries == 0


def test_boundary_fires_on_a_real_shift_and_is_counted():
    ewc = EWC()
    stable = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97]
    assert not any(ewc.record_loss(x) for x in stable)
    assert ewc.record_loss(2.0) is True
    assert ewc.boundaries == 1


def test_boundary_does_not_fire_on_bounded_noise():
    ewc = EWC()
    fired = [ewc.record_loss(1.0 + 0.1 * (-1) ** i) for i in range(200)]
    assert not any(fired)
    rng = np.random.default_rng(7)
    ewc = EWC()
    noise = 1.0 + 0.05 * rng.standard_normal(2000)
    rate = np.mean([ewc.record_loss(float(x)) for x in noise])
    # Against a 10-loss ring with population std, the z statistic of a fresh Gaussian loss is a
    # Student t with 9 degrees of freedom times about 1.1, so z > 2.5 happens about 5% of the time:
    # the reference detector is rare on noise, not silent.
    assert rate < 0.08
    ewc.record_loss(3.0)  # a real shift still fires
    assert ewc.boundaries == round(rate * 2000) + 1


def test_constant_losses_then_a_tiny_change_use_the_std_floor():
    ewc = EWC()
    for _ in range(5):
        ewc.record_loss(1.0)
    assert ewc.record_loss(1.0 + 1e-5) is False  # 0.1 std-floors away
    assert ewc.record_loss(1.0 + 1e-3) is True  # 10 std-floors away
