"""Shift detection shared by the cores: the z-score ring, and an input-shift monitor.

:class:`ZRing` is the reference rule of the design (EWC's loss ring): a value fires when its
z-score against up to ``size`` earlier values (population std, floored) exceeds ``z_threshold``,
once at least ``min_history`` earlier values are in.

:class:`InputShift` exists because a loss level need not move at a topic shift (on MMLU, STEM to
humanities *lowered* the router's loss), while the inputs always move. Per window of ``window``
embeddings it scores how far the window's mean lies from a reference mean, in units of sampling
noise::

    score = window * mean_j(((m_j - ref_j) * scale_j) ** 2)

with ``scale`` the caller's per-dimension ``1 / std`` (the router's running input statistics).
Without a shift the window mean differs from ``ref`` by noise only, so the score is about 1 (a
little more while ``ref`` averages few windows) whatever the embedding's scale or dimension. The
reference is the running mean of the previous windows' means, an EMA with weight ``beta`` once
``1 / windows`` falls below it: it spans about as many windows as the ring, so after a shift it
catches up and the score falls back to about 1. A window fires when the score *rises* past the
reference ring rule (one-sided: a window closer than usual is no shift) and is at least
``min_score`` (twice the no-shift level by default), so ring noise alone cannot fire.

The floor assumes many effective dimensions: with ``k`` independent ones the no-shift score is
about ``chi2_k / k``, which reaches 2 in 0.2% of windows at ``k = 32``, 2e-5 at ``k = 64`` and
never in practice beyond. MiniLM sentence embeddings of MMLU prompts behave like ``k`` of about
100 (no-shift score sd 0.13-0.16). For embeddings with few dimensions, raise ``min_score``.

>>> ring = ZRing()
>>> [ring.push(x) for x in (1.0, 1.1, 0.9, 1.0, 5.0)]
[False, False, False, False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learn.errors import StateError
from learn.state import expect_array

__all__ = ["InputShift", "ZRing"]


class ZRing:
    """A ring of the last ``size`` values with the z-score rule (arguments checked by the caller)."""

    def __init__(
        self,
        size: int = 10,
        z_threshold: float = 2.5,
        min_history: int = 3,
        std_floor: float = 1e-4,
        rise_only: bool = False,
    ) -> None:
        self.size, self.z_threshold, self.min_history = size, z_threshold, min_history
        self.std_floor, self.rise_only = std_floor, rise_only
        self.values = np.zeros(size)
        self.n = 0
        self.pos = 0

    def push(self, x: float) -> bool:
        """Add ``x``; True when it fires against the values before it."""
        fired = False
        if self.n >= self.min_history:
            prior = self.values[: self.n]
            d = x - float(prior.mean())
            z = (d if self.rise_only else abs(d)) / max(float(prior.std()), self.std_floor)
            fired = z > self.z_threshold
        self.values[self.pos] = x
        self.pos = (self.pos + 1) % self.size
        self.n = min(self.n + 1, self.size)
        return fired

    def restore(self, values: np.ndarray, n: Any, pos: Any) -> None:
        """Load saved ring contents; counters out of range are a StateError."""
        n, pos = int(n), int(pos)
        if not (0 <= n <= self.size and 0 <= pos < self.size):
            raise StateError("ring counters are out of range")
        self.values, self.n, self.pos = values, n, pos


class InputShift:
    """Windowed distance of the mean input from a reference mean, fed to a one-sided ZRing."""

    def __init__(
        self, dim: int, window: int = 50, beta: float = 0.1, min_score: float = 2.0
    ) -> None:
        self.dim, self.window, self.beta, self.min_score = dim, window, beta, min_score
        self.ring = ZRing(rise_only=True)
        self._ref = np.zeros(dim)
        self._sum = np.zeros(dim)
        self._count = 0
        self.windows = 0
        self.boundaries = 0
        self.last_score: float | None = None

    def observe(self, x: np.ndarray, scale: np.ndarray) -> bool:
        """Add one input; True when it completes a window that fires (``window == 0``: off)."""
        if self.window == 0:
            return False
        self._sum += x
        self._count += 1
        if self._count < self.window:
            return False
        m = self._sum / self.window
        fired = False
        if self.windows > 0:
            d = (m - self._ref) * scale
            score = self.window * float(np.mean(d * d))
            rose = self.ring.push(score)
            fired = rose and score >= self.min_score
            self.last_score = score
            self.boundaries += int(fired)
        self.windows += 1
        self._ref += max(1.0 / self.windows, self.beta) * (m - self._ref)
        self._sum[:] = 0.0
        self._count = 0
        return fired

    # --- persistence (embedded in the owning core's State) -----------------------------------

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.ref": self._ref, f"{prefix}.sum": self._sum, f"{prefix}.ring": self.ring.values}

    def scalars(self) -> dict[str, Any]:
        return {
            "count": self._count,
            "windows": self.windows,
            "boundaries": self.boundaries,
            "last_score": self.last_score,
            "ring_n": self.ring.n,
            "ring_pos": self.ring.pos,
        }

    def restore(self, arrays: dict[str, np.ndarray], prefix: str, scalars: Any) -> None:
        """Load what :meth:`arrays` and :meth:`scalars` saved; anything inconsistent is a StateError."""
        if not isinstance(scalars, dict):
            raise StateError("shift state is not an object")
        self._ref = expect_array(arrays, f"{prefix}.ref", (self.dim,))
        self._sum = expect_array(arrays, f"{prefix}.sum", (self.dim,))
        self.ring.restore(
            expect_array(arrays, f"{prefix}.ring", (self.ring.size,)),
            scalars["ring_n"],
            scalars["ring_pos"],
        )
        self._count, self.windows = int(scalars["count"]), int(scalars["windows"])
        self.boundaries = int(scalars["boundaries"])
        last = scalars["last_score"]
        self.last_score = None if last is None else float(last)
        if not (0 <= self._count < max(self.window, 1) and self.windows >= 0 and self.boundaries >= 0):
            raise StateError("shift counters are out of range")
