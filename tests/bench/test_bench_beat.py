"""The routing benchmark's emulation of the Celery beat's router jobs (pure: a recording router)."""

from __future__ import annotations

import numpy as np

from bench.routing_eval import REPLAY_EVERY_RUNS, Beat
from learn.limits import REPLAY_MAX, TRAIN_MAX


class Recorder:
    """Stands in for the router: remembers which embeddings each ``train_batch`` call got."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def train_batch(self, X, targets, qualities, epochs=1):  # noqa: ANN001
        self.calls.append([int(row[0]) for row in X])
        assert len(targets) == len(qualities) == len(X)


def test_beat_trains_on_new_outcomes_and_replays_only_seen_ones():
    n = TRAIN_MAX * REPLAY_EVERY_RUNS * 2 + 7
    E = np.arange(n, dtype=float)[:, None] * np.ones((1, 3))  # row i is recognisable by E[i, 0] = i
    beat, router = Beat(E, seed=1), Recorder()
    for i in range(n):
        before = len(router.calls)
        beat.observe(router, i, "t", 1.0)
        for call in router.calls[before:]:
            assert max(call) <= i  # nothing from the future
    trains = [c for c in router.calls if len(c) == TRAIN_MAX]
    replays = [c for c in router.calls if len(c) == REPLAY_MAX]
    assert len(trains) == beat.runs == n // TRAIN_MAX
    assert [c[0] for c in trains] == [k * TRAIN_MAX for k in range(len(trains))]  # each run: the new ones
    assert len(replays) == len(trains) // REPLAY_EVERY_RUNS
    assert beat.pending == n % TRAIN_MAX and len(beat.log) == n


def test_beat_copy_continues_independently_and_can_be_off():
    E = np.zeros((10, 2))
    beat = Beat(E, seed=0)
    beat.observe(Recorder(), 0, "t", 0.0)
    other = beat.copy()
    other.observe(Recorder(), 1, "t", 1.0)
    assert len(beat.log) == 1 and len(other.log) == 2
    off, router = Beat(np.zeros((TRAIN_MAX + 1, 2)), seed=0, enabled=False), Recorder()
    for i in range(TRAIN_MAX + 1):
        off.observe(router, i, "t", 1.0)
    assert router.calls == [] and len(off.log) == TRAIN_MAX + 1
