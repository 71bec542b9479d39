"""A pattern bank: trajectories (what requests did and how well) clustered into patterns.

A trajectory is one request: its query embedding, its steps (each an embedding, optionally the
target that served it) and its final quality in [0, 1]. :meth:`PatternBank.record` keeps it in a
bounded buffer, as one point: the unit query embedding plus ``step_weight`` times the unit mean of
its unit step embeddings, normalised again (``find`` is asked with a query embedding, so the query
dominates; the steps nudge). The time it happened, ``at_ms``, is an argument: the service stamps it
when it queues the event, and the core never reads a clock.

:meth:`PatternBank.cluster` runs seeded spherical k-means++ (cosine) over the buffered trajectories
*together with the existing patterns*, each pattern a point weighted by the mass of the
trajectories it already summarises. The buffer is then emptied: old trajectories live on only in
their patterns' statistics, so memory stays bounded (``max_trajectories`` points plus ``k``
patterns) however many are recorded. When the buffer is full, ``record`` clusters first, so
nothing is dropped between two runs of the beat job.

Why quality weights: a trajectory weighs ``quality_floor + (1 - quality_floor) * quality`` in the
seeding and in the centroid means, so a pattern's centre sits where requests went well: a
neighbourhood where most requests failed pulls less on the centres, and k-means++ spends its
centres on regions with successes. The floor keeps failures from vanishing: a region where every
request failed still draws a centre (with weight ``quality_floor`` per trajectory) and its pattern
says so in its statistics. The statistics themselves are unweighted: every trajectory assigned
to a pattern counts once, whatever its quality.

Per pattern: ``count`` (trajectories), ``mean_quality``, per target the ``count`` of trajectories
that used it in a step and their ``mean_quality`` (a trajectory using a target twice counts once),
and ``last_seen_ms``. Merging a pattern into a new one adds its sums exactly.

The seeding continues k-means++ from the existing patterns (they are the centres already chosen;
each new centre is the best of a few drawn from the trajectories with probability proportional to
weight times squared distance, greedy k-means++ as scikit-learn does it, until there are ``k``). Drawing every centre afresh each round was tried first: D^2
seeding favours outliers, an outlier drawn in one round kept its slot in every later one, and on
the MMLU stream (``bench/pattern_eval.py``) 19 rounds left one pattern holding 51-73% of the
trajectories beside patterns of two. Continuing from the patterns keeps them balanced; the price
is that a region first seen once all ``k`` patterns exist joins the nearest patterns (and moves
them) instead of taking a slot of its own. The seeding of round ``r`` draws from
``default_rng([seed, r])``: the same bank and trajectories give the same patterns in any process,
and no generator state needs saving.

>>> bank = PatternBank(dim=2, targets=["gpt", "mix"], k=2, seed=0)
>>> for i in range(4):
...     bank.record({"embedding": [1.0, 0.05 * i], "steps": [{"embedding": [1.0, 0.0], "target": "gpt"}],
...                  "quality": 1.0}, at_ms=i)
...     bank.record({"embedding": [0.05 * i, 1.0], "steps": [{"embedding": [0.0, 1.0], "target": "mix"}],
...                  "quality": 0.2}, at_ms=10 + i)
>>> bank.buffered, bank.patterns
(8, 0)
>>> bank.cluster()
>>> bank.buffered, bank.patterns
(0, 2)
>>> best = bank.find([1.0, 0.1], k=1)[0]
>>> best["count"], best["mean_quality"], best["targets"]["gpt"], best["last_seen_ms"]
(4, 1.0, {'count': 4, 'mean_quality': 1.0}, 3)
>>> best["targets"]["mix"]
{'count': 0, 'mean_quality': None}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from learn import _check
from learn._base import Targeted
from learn.errors import LearnInputError, StateError
from learn.state import State, expect_array, register

__all__ = ["PatternBank"]

_I64 = np.int64


@register
class PatternBank(Targeted):
    """Trajectories in a bounded buffer, clustered (seeded k-means++, cosine) into ``k`` patterns.

    Settings: ``dim`` (embedding length), ``targets``, ``max_trajectories`` (buffer size),
    ``k`` (patterns at most), ``max_steps`` (per trajectory), ``seed``, ``step_weight`` (the
    steps' pull on a trajectory's point, 0.25), ``quality_floor`` (a failed trajectory's weight,
    0.1), ``max_iter`` (Lloyd iterations per clustering, 20).
    """

    kind: ClassVar[str] = "patterns"

    def __init__(
        self,
        dim: int,
        targets: Sequence[str],
        max_trajectories: int = 1024,
        k: int = 16,
        max_steps: int = 16,
        seed: int = 0,
        step_weight: float = 0.25,
        quality_floor: float = 0.1,
        max_iter: int = 20,
    ) -> None:
        self.dim = _check.integer(dim, "dim", lo=1)
        self.targets = _check.targets(targets)
        self.max_trajectories = _check.integer(max_trajectories, "max_trajectories", lo=1)
        self.k = _check.integer(k, "k", lo=1)
        self.max_steps = _check.integer(max_steps, "max_steps", lo=0)
        self.seed = _check.integer(seed, "seed", lo=0)
        self.step_weight = _check.number(step_weight, "step_weight", lo=0.0)
        self.quality_floor = _check.number(quality_floor, "quality_floor", lo=0.0, hi=1.0)
        if self.quality_floor == 0.0:
            raise LearnInputError("quality_floor", "must be above 0 (a failed trajectory must still count)")
        self.max_iter = _check.integer(max_iter, "max_iter", lo=1)
        self._index = {t: i for i, t in enumerate(self.targets)}
        n = len(self.targets)
        # the buffer: one row per trajectory (lists: appending is O(1); stacked for the state)
        self._x: list[np.ndarray] = []
        self._q: list[float] = []
        self._used: list[np.ndarray] = []
        self._at: list[int] = []
        # the patterns
        self._centroid = np.zeros((0, self.dim))
        self._mass = np.zeros(0)
        self._count = np.zeros(0, dtype=_I64)
        self._qsum = np.zeros(0)
        self._tcount = np.zeros((0, n), dtype=_I64)
        self._tqsum = np.zeros((0, n))
        self._last = np.zeros(0, dtype=_I64)
        self.recorded = 0
        self.clusterings = 0

    @property
    def buffered(self) -> int:
        """Trajectories recorded since the last clustering."""
        return len(self._x)

    @property
    def patterns(self) -> int:
        return len(self._mass)

    # --- updates -----------------------------------------------------------------------------

    def record(self, trajectory: Mapping[str, Any], at_ms: Any) -> None:
        """Buffer one trajectory (``{"embedding", "steps", "quality"}``) seen at ``at_ms``.

        Everything is checked before anything changes. A full buffer is clustered first
        (``clusterings`` counts the runs).
        """
        x, quality, used = self._parse(trajectory)
        at = _check.integer(at_ms, "at_ms")
        if len(self._x) >= self.max_trajectories:
            self.cluster()
        self._x.append(x)
        self._q.append(quality)
        self._used.append(used)
        self._at.append(at)
        self.recorded += 1

    def check(self, trajectory: Mapping[str, Any]) -> None:
        """Raise what :meth:`record` would raise for ``trajectory`` (changes nothing)."""
        self._parse(trajectory)

    def _parse(self, trajectory: Mapping[str, Any]) -> tuple[np.ndarray, float, np.ndarray]:
        """A trajectory's point, quality and targets used; LearnInputError names a bad field."""
        if not isinstance(trajectory, Mapping):
            raise LearnInputError("trajectory", "expected an object with embedding, steps and quality")
        x = self._unit(trajectory.get("embedding"), "embedding")
        quality = _check.number(trajectory.get("quality"), "quality", lo=0.0, hi=1.0)
        steps = trajectory.get("steps", [])
        if not isinstance(steps, (list, tuple)):
            raise LearnInputError("steps", "expected a list of steps")
        if len(steps) > self.max_steps:
            raise LearnInputError("steps", f"at most {self.max_steps} per trajectory")
        used = np.zeros(len(self.targets), dtype=np.bool_)
        pull = np.zeros(self.dim)
        for i, step in enumerate(steps):
            if not isinstance(step, Mapping):
                raise LearnInputError(f"steps.{i}", "expected an object with an embedding")
            pull += self._unit(step.get("embedding"), f"steps.{i}.embedding")
            target = step.get("target")
            if target is not None:
                used[self.target_index(target, f"steps.{i}.target")] = True
        norm = np.linalg.norm(pull)
        if self.step_weight > 0.0 and norm > 0.0:
            point = x + self.step_weight * (pull / norm)
            norm = np.linalg.norm(point)
            x = point / norm if norm > 0.0 else x
        return x, quality, used

    def cluster(self) -> None:
        """Fold the buffered trajectories and the existing patterns into at most ``k`` patterns
        (nothing to do with an empty buffer)."""
        if not self._x:
            return
        X = np.concatenate([self._centroid, np.array(self._x)])
        q = np.array(self._q)
        w = np.concatenate([self._mass, self.quality_floor + (1.0 - self.quality_floor) * q])
        used = np.array(self._used, dtype=_I64)
        count = np.concatenate([self._count, np.ones(len(q), dtype=_I64)])
        qsum = np.concatenate([self._qsum, q])
        tcount = np.concatenate([self._tcount, used])
        tqsum = np.concatenate([self._tqsum, used * q[:, None]])
        last = np.concatenate([self._last, np.array(self._at, dtype=_I64)])
        rng = np.random.default_rng([self.seed, self.clusterings])
        centres, assign = _kmeans(X, w, min(self.k, len(X)), rng, self.max_iter, held=len(self._mass))
        kept = [j for j in range(len(centres)) if (assign == j).any()]
        m = len(kept)
        self._centroid = centres[kept]
        self._mass, self._qsum, self._tqsum = np.zeros(m), np.zeros(m), np.zeros((m, len(self.targets)))
        self._count, self._tcount = np.zeros(m, dtype=_I64), np.zeros((m, len(self.targets)), dtype=_I64)
        self._last = np.full(m, np.iinfo(_I64).min, dtype=_I64)
        for new, j in enumerate(kept):
            members = assign == j
            self._mass[new] = w[members].sum()
            self._count[new] = count[members].sum()
            self._qsum[new] = qsum[members].sum()
            self._tcount[new] = tcount[members].sum(axis=0)
            self._tqsum[new] = tqsum[members].sum(axis=0)
            self._last[new] = last[members].max()
        self._x, self._q, self._used, self._at = [], [], [], []
        self.clusterings += 1

    # --- reads -------------------------------------------------------------------------------

    def find(self, embedding: Any, k: Any = 5) -> list[dict[str, Any]]:
        """The ``k`` patterns nearest ``embedding`` (cosine), nearest first, with their statistics
        (trajectories not yet clustered are not in any pattern)."""
        x = self._unit(embedding, "embedding")
        k = _check.integer(k, "k", lo=1)
        if not self.patterns:
            return []
        sim = self._centroid @ x
        order = np.argsort(-sim, kind="stable")[:k]
        return [self._describe(int(j), float(sim[j])) for j in order]

    def centroids(self) -> np.ndarray:
        """The patterns' unit centres, one row each (a copy)."""
        return self._centroid.copy()

    def _describe(self, j: int, similarity: float) -> dict[str, Any]:
        targets = {}
        for t, name in enumerate(self.targets):
            n = int(self._tcount[j, t])
            targets[name] = {"count": n, "mean_quality": float(self._tqsum[j, t] / n) if n else None}
        return {"pattern": j, "similarity": similarity, "count": int(self._count[j]),
                "mean_quality": float(self._qsum[j] / self._count[j]), "targets": targets,
                "last_seen_ms": int(self._last[j])}

    def _unit(self, value: Any, field: str) -> np.ndarray:
        v = _check.vector(value, field, self.dim)
        norm = np.linalg.norm(v)
        if norm == 0.0:
            raise LearnInputError(field, "must not be all zeros (its direction is what counts)")
        return v / norm

    # --- persistence -------------------------------------------------------------------------

    def to_state(self) -> State:
        n, t = len(self._x), len(self.targets)
        return State(
            settings=self.settings(),
            scalars={"buffered": n, "patterns": self.patterns, "recorded": self.recorded,
                     "clusterings": self.clusterings},
            arrays={
                "buffer.x": np.array(self._x).reshape(n, self.dim),
                "buffer.quality": np.array(self._q, dtype=np.float64),
                "buffer.targets": np.array(self._used, dtype=np.bool_).reshape(n, t),
                "buffer.at_ms": np.array(self._at, dtype=_I64),
                "pattern.centroid": self._centroid,
                "pattern.mass": self._mass,
                "pattern.count": self._count,
                "pattern.quality_sum": self._qsum,
                "pattern.target_count": self._tcount,
                "pattern.target_quality_sum": self._tqsum,
                "pattern.last_ms": self._last,
            },
        )

    @classmethod
    def from_state(cls, state: State) -> PatternBank:
        core = cls._from_settings(state)
        sc, a = state.scalars, state.arrays
        n, m, t, d = int(sc["buffered"]), int(sc["patterns"]), len(core.targets), core.dim
        if n > core.max_trajectories or m > core.k or n < 0 or m < 0:
            raise StateError("patterns state holds more than its bounds")
        if len(a) != 11:
            raise StateError("patterns blob holds unexpected arrays")
        core._x = list(expect_array(a, "buffer.x", (n, d)))
        core._q = expect_array(a, "buffer.quality", (n,)).tolist()
        core._used = list(expect_array(a, "buffer.targets", (n, t), np.bool_))
        core._at = expect_array(a, "buffer.at_ms", (n,), _I64).tolist()
        core._centroid = expect_array(a, "pattern.centroid", (m, d))
        core._mass = expect_array(a, "pattern.mass", (m,))
        core._count = expect_array(a, "pattern.count", (m,), _I64)
        core._qsum = expect_array(a, "pattern.quality_sum", (m,))
        core._tcount = expect_array(a, "pattern.target_count", (m, t), _I64)
        core._tqsum = expect_array(a, "pattern.target_quality_sum", (m, t))
        core._last = expect_array(a, "pattern.last_ms", (m,), _I64)
        if (core._count < 1).any():
            raise StateError("patterns state holds an empty pattern")
        core.recorded = int(sc["recorded"])
        core.clusterings = int(sc["clusterings"])
        return core


def _kmeans(X: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator, max_iter: int,
            held: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weighted spherical k-means++ on unit rows ``X``: (unit centres, assignment of each row).

    Seeding continues k-means++ from the first ``held`` rows (the existing patterns: centres
    already chosen; with none, the first centre is drawn with probability proportional to ``w``):
    each next centre is the best of ``2 + ln k`` candidates drawn with probability proportional to
    ``w * D^2`` (``D^2 = 2 - 2 cos`` to the nearest centre so far; the best leaves the least weighted
    ``D^2``), until ``k`` or until every point sits on a centre. Lloyd steps assign by cosine and move each centre to the normalised
    weighted mean of its members, until the assignment stops changing or ``max_iter`` steps.
    """
    picks = list(range(min(held, k))) or [_draw(w, rng)]
    d2 = np.maximum(2.0 - 2.0 * (X @ X[picks].T).max(axis=1), 0.0)
    trials = 2 + int(np.log(k))  # greedy k-means++, as scikit-learn does it
    while len(picks) < k:
        p = w * d2
        if p.sum() <= 0.0:
            break
        candidates = [_draw(p, rng) for _ in range(trials)]
        near = np.minimum(d2[:, None], np.maximum(2.0 - 2.0 * (X @ X[candidates].T), 0.0))
        best = int(np.argmin(w @ near))  # the candidate that leaves the least weighted D^2
        picks.append(candidates[best])
        d2 = near[:, best]
    C = X[picks].copy()
    assign = np.argmax(X @ C.T, axis=1)
    wX = w[:, None] * X
    for _ in range(max_iter):
        S = np.zeros_like(C)
        np.add.at(S, assign, wX)  # each centre's weighted member sum
        norm = np.linalg.norm(S, axis=1)
        moved = norm > 0.0  # a centre without members (or with cancelling ones) stays
        C[moved] = S[moved] / norm[moved, None]
        again = np.argmax(X @ C.T, axis=1)
        if np.array_equal(again, assign):
            break
        assign = again
    return C, assign


def _draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to ``p`` (non-negative, positive sum)."""
    cum = np.cumsum(p)
    return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(p) - 1))
