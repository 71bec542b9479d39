"""The pattern bank: separable clusters are found with the right statistics, old trajectories are
summarised (memory bounded, sums exact), quality weights pull the centres, seeding decides."""

from __future__ import annotations

import doctest

import numpy as np

import learn.patterns
from learn import PatternBank, from_bytes, to_bytes
from learn import limits as L

DIM = 16
TARGETS = ["gpt", "mix", "small"]


def groups(rng: np.random.Generator, sizes=(30, 20, 10), spread: float = 0.05):
    """Trajectories around three orthogonal directions; group g uses target g, quality 0.9 / 0.5 / 0.1."""
    out = []
    for g, size in enumerate(sizes):
        centre = np.zeros(DIM)
        centre[g] = 1.0
        for i in range(size):
            x = centre + spread * rng.standard_normal(DIM)
            out.append((g, {"embedding": x.tolist(), "quality": [0.9, 0.5, 0.1][g],
                            "steps": [{"embedding": x.tolist(), "target": TARGETS[g]}]}, 1000 * g + i))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def test_doctests() -> None:
    result = doctest.testmod(learn.patterns)
    assert result.attempted > 0 and result.failed == 0


def test_separable_clusters_are_found_with_their_statistics() -> None:
    rng = np.random.default_rng(0)
    bank = PatternBank(dim=DIM, targets=TARGETS, k=3, seed=1)
    for _, traj, at in groups(rng):
        bank.record(traj, at)
    bank.cluster()
    assert bank.patterns == 3 and bank.buffered == 0
    for g, (size, quality) in enumerate(((30, 0.9), (20, 0.5), (10, 0.1))):
        query = np.zeros(DIM)
        query[g] = 1.0
        found = bank.find(query, k=3)
        best = found[0]
        assert best["similarity"] > 0.95 and found[1]["similarity"] < 0.3
        assert [f["similarity"] for f in found] == sorted((f["similarity"] for f in found), reverse=True)
        assert best["count"] == size
        assert abs(best["mean_quality"] - quality) < 1e-12
        assert best["targets"][TARGETS[g]]["count"] == size
        assert abs(best["targets"][TARGETS[g]]["mean_quality"] - quality) < 1e-12
        assert all(best["targets"][t] == {"count": 0, "mean_quality": None} for t in TARGETS if t != TARGETS[g])
        assert best["last_seen_ms"] == 1000 * g + size - 1
    assert bank.find(np.ones(DIM), k=10) and len(bank.find(np.ones(DIM), k=10)) == 3  # at most what exists


def test_streamed_through_a_small_buffer_the_patterns_are_still_the_groups() -> None:
    """Clustered 8 at a time (7 rounds, the first holding every group), the patterns are the three
    groups with their exact statistics: old patterns seed the next round, no outlier takes a slot."""
    rng = np.random.default_rng(4)
    rank: dict[int, int] = {}
    keyed = []
    for item in groups(rng):  # round robin over the groups, each group in its shuffled order
        rank[item[0]] = rank.get(item[0], -1) + 1
        keyed.append(((rank[item[0]], item[0]), item))
    stream = [item for _, item in sorted(keyed, key=lambda pair: pair[0])]
    bank = PatternBank(dim=DIM, targets=TARGETS, max_trajectories=8, k=3, seed=5)
    for _, traj, at in stream:
        bank.record(traj, at)
    bank.cluster()
    assert bank.clusterings == 8 and bank.patterns == 3
    for g, size in enumerate((30, 20, 10)):
        query = np.zeros(DIM)
        query[g] = 1.0
        best = bank.find(query, k=1)[0]
        assert best["count"] == size and best["targets"][TARGETS[g]]["count"] == size


def test_a_trajectory_counts_once_per_target_and_only_clustered_ones_are_found() -> None:
    bank = PatternBank(dim=2, targets=["a", "b"], k=1)
    assert bank.find([1.0, 0.0]) == []
    steps = [{"embedding": [1.0, 0.0], "target": "a"}, {"embedding": [1.0, 0.0], "target": "a"},
             {"embedding": [1.0, 0.0]}]
    bank.record({"embedding": [1.0, 0.0], "steps": steps, "quality": 0.4}, at_ms=5)
    assert bank.find([1.0, 0.0]) == [] and bank.buffered == 1
    bank.cluster()
    (p,) = bank.find([1.0, 0.0])
    assert p["count"] == 1 and p["targets"] == {"a": {"count": 1, "mean_quality": 0.4},
                                                  "b": {"count": 0, "mean_quality": None}}


def test_memory_stays_bounded_and_old_trajectories_are_summarised_exactly() -> None:
    rng = np.random.default_rng(3)
    bank = PatternBank(dim=DIM, targets=TARGETS, max_trajectories=50, k=4, seed=2)
    total_q = 0.0
    sizes = []
    for i in range(2000):
        x = rng.standard_normal(DIM)
        q = float(rng.random())
        total_q += q
        bank.record({"embedding": x.tolist(), "quality": q,
                     "steps": [{"embedding": x.tolist(), "target": TARGETS[i % 3]}]}, at_ms=i)
        assert bank.buffered <= 50 and bank.patterns <= 4
        if i % 500 == 499:
            sizes.append(len(to_bytes(bank)))
    assert bank.recorded == 2000 and bank.clusterings == 39  # a full buffer clusters before the next
    assert max(sizes) <= L.state_bytes("patterns", dim=DIM, max_trajectories=50, targets=3, k=4) + 4096
    bank.cluster()
    found = bank.find(np.ones(DIM), k=4)
    assert sum(p["count"] for p in found) == 2000
    assert abs(sum(p["mean_quality"] * p["count"] for p in found) - total_q) < 1e-9
    per_target = {t: sum(p["targets"][t]["count"] for p in found) for t in TARGETS}
    assert per_target == {"gpt": 667, "mix": 667, "small": 666}
    assert max(p["last_seen_ms"] for p in found) == 1999


def test_quality_weights_pull_the_centre_towards_what_went_well() -> None:
    good, bad = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    centres = {}
    for floor in (0.1, 1.0):  # a floor of 1: every trajectory weighs the same
        bank = PatternBank(dim=2, targets=["a"], k=1, quality_floor=floor)
        bank.record({"embedding": good.tolist(), "quality": 1.0}, at_ms=0)
        bank.record({"embedding": bad.tolist(), "quality": 0.0}, at_ms=1)
        bank.cluster()
        centres[floor] = bank.centroids()[0]
    assert np.allclose(centres[1.0], np.array([1.0, 1.0]) / np.sqrt(2))
    assert centres[0.1] @ good > 0.99 > centres[0.1] @ bad
    (p,) = bank.find(good, k=1)
    assert p["mean_quality"] == 0.5  # the statistics are not weighted


def test_clustering_is_deterministic_under_the_seed_and_survives_a_restart() -> None:
    def run(seed: int, restart_at: int | None = None) -> PatternBank:
        rng = np.random.default_rng(7)
        bank = PatternBank(dim=DIM, targets=TARGETS, max_trajectories=40, k=6, seed=seed)
        for i in range(300):
            if i == restart_at:
                bank = from_bytes(to_bytes(bank), "patterns")
            bank.record({"embedding": rng.standard_normal(DIM).tolist(), "quality": float(rng.random())}, at_ms=i)
        bank.cluster()
        return bank

    a, b = run(11), run(11, restart_at=123)
    assert to_bytes(a) == to_bytes(b)
    assert np.array_equal(a.centroids(), b.centroids())
    assert not np.allclose(run(12).centroids(), a.centroids())


def test_the_largest_allowed_bank_fits_the_state_budget() -> None:
    dim = 1024
    n = L.PATTERNS_MAX_VALUES // dim - L.PATTERNS_MAX_K
    bank = PatternBank(dim=dim, targets=[f"t{i}" for i in range(L.MAX_TARGETS)], max_trajectories=n,
                       k=L.PATTERNS_MAX_K, max_iter=1)
    rng = np.random.default_rng(0)
    for i in range(L.PATTERNS_MAX_K):
        bank.record({"embedding": rng.standard_normal(dim), "quality": 0.5}, at_ms=i)
    bank.cluster()  # k distinct points: k patterns
    while bank.buffered < n:
        bank.record({"embedding": rng.standard_normal(dim), "quality": 0.5}, at_ms=0)
    assert bank.patterns == L.PATTERNS_MAX_K and bank.buffered == n
    blob = to_bytes(bank)
    estimate = L.state_bytes("patterns", dim=dim, max_trajectories=n, targets=L.MAX_TARGETS, k=L.PATTERNS_MAX_K)
    assert estimate <= len(blob) <= estimate + 8192
    assert len(blob) <= L.STATE_BUDGET_BYTES
