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
