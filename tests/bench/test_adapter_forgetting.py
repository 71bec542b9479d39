"""The adapter-forgetting benchmark's measures (pure: no data files)."""

from __future__ import annotations

import numpy as np

from bench.adapter_forgetting import auc, measure, variants
from learn import MicroLoRA


def test_auc_is_the_share_of_correctly_ordered_pairs_ties_half():
    rng = np.random.default_rng(0)
    score = rng.integers(0, 5, 60).astype(float)  # many ties
    label = rng.random(60) < 0.4
    pos, neg = score[label], score[~label]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert np.isclose(auc(score, label), pairs / (len(pos) * len(neg)))
    assert auc(np.array([1.0, 2.0]), np.array([False, True])) == 1.0
    assert np.isnan(auc(np.array([1.0]), np.array([True])))


def test_measure_reads_base_plus_micro_as_apply_answers():
    rng = np.random.default_rng(1)
    E = rng.standard_normal((30, 6))
    lora = MicroLoRA(targets=["weak", "strong"], in_dim=6, seed=0, base_min_inputs=4)
    for i in range(12):
        lora.learn(E[i], ["weak", "strong"][i % 2], float(i % 3 == 0))
    lora.consolidate()
    lora.learn(E[20], "strong", 1.0)
    S, W = rng.random(30) < 0.6, rng.random(30) < 0.4
    idx = np.arange(30)
    diff = np.array([lora.apply(E[i])[1] - lora.apply(E[i])[0] for i in idx])
    got = measure(lora, E, idx, S, W)
    assert np.isclose(got["auc"], auc(diff[S != W], S[S != W]))
    assert np.isclose(got["accuracy"], np.where(diff >= 0, S, W).mean())


def test_every_variant_but_micro_consolidates():
    v = variants(64)
    assert v["micro"]["every"] is None
    assert all(x["every"] for name, x in v.items() if name != "micro")
