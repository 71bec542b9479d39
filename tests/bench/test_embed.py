"""The TF-IDF vocabulary cut of the benchmarks' embeddings (pure: no scikit-learn needed)."""

from __future__ import annotations

import numpy as np

from bench._embed import most_frequent


def test_the_vocabulary_cut_keeps_the_most_frequent_terms_and_breaks_ties_by_position():
    totals = np.array([3, 9, 3, 3, 1, 7, 3])
    assert most_frequent(totals, 4).tolist() == [1, 5, 0, 2]  # 9, 7, then the first two 3s
    assert most_frequent(totals, 10).tolist() == [1, 5, 0, 2, 3, 6, 4]
    # many ties at the cut, as on MMLU's full stream: the kept ones are always the first ones,
    # so the cut is the same whatever the sort's implementation does with equal keys
    rng = np.random.default_rng(0)
    many = rng.integers(2, 6, size=20_000)
    kept = most_frequent(many, 9_000)
    cut = np.sort(many)[::-1][8_999]
    assert (many[kept] >= cut).all() and set(np.flatnonzero(many > cut)) <= set(kept.tolist())
    at_cut = np.sort(kept[many[kept] == cut])
    assert np.array_equal(at_cut, np.flatnonzero(many == cut)[:len(at_cut)])
