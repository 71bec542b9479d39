"""Input-shift monitor: warm-up, a real shift fires, stationary noise and drops do not."""

from __future__ import annotations

import numpy as np
import pytest

from learn import EWC, Draw, FastGRNNRouter, LearnInputError, from_bytes, to_bytes
from learn.shift import InputShift, ZRing

DIM, WINDOW = 128, 50  # many effective dimensions, as sentence embeddings have (see learn.shift)


def windows(rng: np.random.Generator, n: int, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """``n`` windows of Gaussian inputs, flattened into one stream of rows."""
    return mean + sd * rng.standard_normal((n * WINDOW, DIM))


def feed(mon: InputShift, xs: np.ndarray, scale: float = 1.0) -> list[int]:
    """Indices (in windows) of the windows that fired."""
    s = np.full(DIM, scale)
    return [i // WINDOW for i, x in enumerate(xs) if mon.observe(x, s)]


def test_zring_rise_only_ignores_drops_and_the_two_sided_rule_does_not():
    calm = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0]
    up, both = ZRing(rise_only=True), ZRing()
    assert [up.push(x) for x in calm] == [both.push(x) for x in calm] == [False] * 6
    assert (up.push(0.5), both.push(0.5)) == (False, True)


def test_scores_are_about_one_without_a_shift_and_nothing_fires(rng):
    mon = InputShift(DIM, WINDOW)
    assert feed(mon, windows(rng, 300)) == []
    assert mon.windows == 300 and mon.boundaries == 0
    scores = []
    for _ in range(100):
        feed(mon, windows(rng, 1))
        scores.append(mon.last_score)
    assert 0.9 < np.mean(scores) < 1.2  # (1 + beta / (2 - beta)) = 1.05 expected


def test_a_real_shift_fires_at_once_and_only_there(rng):
    mon = InputShift(DIM, WINDOW)
    fired = feed(mon, np.vstack([windows(rng, 40), windows(rng, 40, mean=0.5)]))
    assert fired and fired[0] == 40  # the first window of the new inputs
    assert all(i < 43 for i in fired)  # the reference catches up, then silence
    assert mon.boundaries == len(fired)


def test_no_fire_during_warm_up_even_on_a_shift(rng):
    # window 1 only sets the reference; windows 2-4 fill the ring to min_history (3)
    mon = InputShift(DIM, WINDOW)
    assert feed(mon, np.vstack([windows(rng, 2), windows(rng, 2, mean=3.0)])) == []
    assert feed(mon, windows(rng, 1, mean=-6.0)) == [0]  # the 5th window can fire


def test_a_window_closer_than_usual_does_not_fire(rng):
    mon = InputShift(DIM, WINDOW)
    feed(mon, windows(rng, 20))
    assert feed(mon, windows(rng, 5, sd=0.01)) == []


def test_the_score_floor_keeps_ring_noise_from_firing(rng):
    # Scaled down 10x the scores are about 0.01, so a jump to ~1.3 is a huge z-score, but not a
    # window far from its reference: no fire until the score reaches min_score (2).
    mon = InputShift(DIM, WINDOW)
    feed(mon, windows(rng, 20), scale=0.1)
    assert feed(mon, windows(rng, 1, mean=1.6), scale=0.1) == []  # score 50 * 0.16^2 = 1.28
    assert 0.5 < mon.last_score < 2.0
    assert feed(mon, windows(rng, 1, mean=-3.0), scale=0.1) == [0]
    assert mon.last_score >= 2.0


def test_router_fires_at_a_topic_shift_that_leaves_the_loss_level_unchanged():
    """Coin-flip qualities on both sides of the shift: nothing for a loss ring to see."""
    rng = np.random.default_rng(3)
    r = FastGRNNRouter(in_dim=DIM, targets=["a", "b"], epsilon=1.0, seed=0)
    explore = np.random.default_rng(4)  # the exploration draws
    ewc = EWC()
    a_mean, b_mean = np.zeros(DIM), np.zeros(DIM)
    a_mean[:4], b_mean[4:8] = 2.0, 2.0
    fired_at, losses = [], []
    for i in range(60 * WINDOW):
        x = (a_mean if i < 30 * WINDOW else b_mean) + rng.standard_normal(DIM)
        choice = r.route(x, draw=Draw.from_rng(explore))["model"]
        q = float(rng.random() < 0.5)
        losses.append(r.loss(x, choice, q))
        if r.record_outcome(choice, q, embedding=x):
            fired_at.append(i // WINDOW)
        if len(losses) == WINDOW:
            ewc.record_loss(float(np.mean(losses)))
            losses = []
    assert fired_at and fired_at[0] == 30 and all(w < 33 for w in fired_at)
    assert r.boundaries == len(fired_at) and r.shift_score is not None
    # the outcomes' learning is untouched by the monitor
    quiet = FastGRNNRouter(in_dim=DIM, targets=["a", "b"], epsilon=1.0, seed=0, shift_window=0)
    rng = np.random.default_rng(3)
    for i in range(3 * WINDOW):
        x = a_mean + rng.standard_normal(DIM)
        choice = quiet.route(x, draw=Draw.from_rng(explore))["model"]
        assert quiet.record_outcome(choice, float(rng.random() < 0.5), embedding=x) is False
    assert quiet.boundaries == 0 and quiet.shift_score is None


def test_monitor_does_not_change_what_the_router_learns(rng):
    xs = [rng.standard_normal(8) for _ in range(120)]
    on = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, seed=1, shift_window=10)
    off = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, seed=1, shift_window=0)
    for i, x in enumerate(xs):
        for r in (on, off):
            r.record_outcome(["a", "b"][i % 2], float(x[0] > 0), embedding=x)
    assert on.shift_score is not None
    for name, p in on.params().items():
        assert np.array_equal(p, off.params()[name])


def test_batch_training_does_not_feed_the_monitor(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, shift_window=2)
    before = to_bytes(r)
    X = rng.standard_normal((20, 8))
    r.train_batch(X, ["a"] * 20, [1.0] * 20)
    st = r.to_state()
    assert st.scalars["shift"] == from_bytes(before, "router").to_state().scalars["shift"]
    assert not st.arrays["shift.sum"].any()


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"shift_window": -1}, "shift_window"),
        ({"shift_window": 2.5}, "shift_window"),
        ({"shift_beta": 0.0}, "shift_beta"),
        ({"shift_beta": 1.5}, "shift_beta"),
        ({"shift_min": -1.0}, "shift_min"),
    ],
)
def test_bad_shift_settings_are_rejected(kwargs, field):
    with pytest.raises(LearnInputError) as info:
        FastGRNNRouter(in_dim=8, targets=["a", "b"], **kwargs)
    assert info.value.field == field
