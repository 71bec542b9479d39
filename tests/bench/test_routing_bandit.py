"""The routing bandit benchmark's held-out-subject split and full-information ceiling (pure)."""

from __future__ import annotations

import numpy as np

from bench.routing_bandit import SIZES, FullInformation, split


def test_the_subject_split_holds_whole_subjects_out_and_keeps_the_sizes():
    subjects = [f"s{i % 20}" for i in range(3000)]
    names = np.array(subjects)
    for order in range(3):
        stream, held = split(len(subjects), "subjects", order, subjects)
        assert (len(stream), len(held)) == SIZES["subjects"]
        assert not set(names[stream]) & set(names[held])  # no subject on both sides
        assert len(set(stream.tolist()) | set(held.tolist())) == len(stream) + len(held)
        assert 0.3 <= np.isin(names, sorted(set(names[held]))).mean() <= 0.3 + 1 / 20
    a, b = split(len(subjects), "subjects", 0, subjects), split(len(subjects), "subjects", 1, subjects)
    assert set(names[a[1]]) != set(names[b[1]])  # the held-out subjects follow the order
    small = split(len(subjects), "small", 0)
    assert np.array_equal(small[0], split(len(subjects), "small", 0, subjects)[0])


def test_the_ceiling_learns_from_both_outcomes_and_routes_greedily_at_the_price():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(400, 3))
    Q = np.stack([0.5 - 0.3 * E[:, 0], 0.5 + 0.3 * E[:, 0]], axis=1)  # (weak, strong)
    worth = Q[:, 1] - 0.15 > Q[:, 0]  # the strong model is worth its price of 0.15
    cheap = FullInformation(E, Q, 300, cost_weight=0.15, lam=1.0)
    held = range(300, 400)
    chosen = np.array([cheap.route(E[i], i, False) for i in held])
    assert np.array_equal(chosen, worth[300:].astype(int))  # noiseless: exactly the oracle
    dear = FullInformation(E, Q, 300, cost_weight=2.0, lam=1.0)
    assert all(dear.route(E[i], i, False) == 0 for i in held)  # never worth a price of 2
    assert cheap.scores(E[300:]).shape == (100, 2)


def test_the_gap_pool_holds_the_subjects_where_the_strong_model_leads_and_no_others():
    from bench._embed import MMLU
    from bench.routing_bandit import gap_rows

    # subject "wide": strong right 9 of 10, weak 5 of 10; "narrow": 6 and 5 of 10
    subjects = ["wide"] * 10 + ["narrow"] * 10
    strong = np.array([True] * 9 + [False] + [True] * 6 + [False] * 4)
    weak = np.array([True] * 5 + [False] * 5 + [True] * 5 + [False] * 5)
    data = MMLU(subjects, [f"p{i}" for i in range(20)], strong, weak)
    assert gap_rows(data, lead=0.12).tolist() == list(range(10))
    assert gap_rows(data, lead=0.05).tolist() == list(range(20))  # narrow leads by 0.1
    pool = gap_rows(data, lead=0.12)
    stream, held = split(20, "gap", 0, subjects, pool)
    assert set(stream.tolist()) | set(held.tolist()) <= set(range(10))


def test_planted_outcomes_leave_a_difference_to_learn_and_repeat_per_order():
    from bench.routing_bandit import planted_outcomes

    E = np.random.default_rng(3).normal(size=(1429, 64))
    Q = planted_outcomes(E, 1000, order=0)
    assert np.array_equal(Q, planted_outcomes(E, 1000, order=0))
    assert not np.array_equal(Q, planted_outcomes(E, 1000, order=1))
    acc_weak, acc_strong = Q.mean(axis=0)
    assert 0.80 < acc_strong < 0.92 and 0.58 < acc_weak < 0.72  # like issue 13's data
    # knowing both outcomes of the stream, a ridge router beats a random one at its own share
    ceiling = FullInformation(E, Q, 1000, cost_weight=0.15, lam=10.0)
    held = np.arange(1000, 1429)
    ks = np.array([ceiling.route(E[i], i, False) for i in held])
    share = ks.mean()
    acc = Q[held, ks].mean()
    random_acc = Q[held, 0].mean() + share * (Q[held, 1].mean() - Q[held, 0].mean())
    assert 0.15 < share < 0.95 and acc - random_acc > 0.02


def test_the_calibration_error_is_small_for_honest_estimates_and_measures_a_bias():
    from bench.routing_bandit import calibration_error

    rng = np.random.default_rng(5)
    p = rng.random(20_000)
    outcome = (rng.random(p.size) < p).astype(float)  # right with the stated probability
    assert calibration_error(p, outcome) < 0.02
    assert abs(calibration_error(np.clip(p + 0.2, 0, 1), outcome) - 0.2) < 0.05  # over-confident by 0.2
    assert calibration_error(np.full(p.size, 0.5), outcome) < 0.02  # right on average is calibrated
    # a difference of two outcomes lies in [-1, 1]: so does its estimate's range
    q = rng.random(p.size)
    diff = outcome - (rng.random(p.size) < q)
    assert calibration_error(p - q, diff, lo=-1.0) < 0.02
    assert calibration_error(q - p, diff, lo=-1.0) > 0.3  # the sign turned round
