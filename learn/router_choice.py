"""The router's last step: per-target scores, less the price, plus the adapter's logits, argmax.

``choose`` computes ``argmax(score - cost_weight * cost + adapter)`` on floats rather than numpy
arrays: a route has a few targets, where a float operation costs far less than a numpy call, and
IEEE ``+ - *`` give the same bits either way. ``argmax`` answers as :func:`numpy.argmax` does:
the first of equal maxima, and the first NaN if there is one.

>>> choose([0.2, 0.5, 0.5], 0.0, np.zeros(3), None), choose([0.2, 0.5, 0.5], 1.0, np.array([0.0, 0.4, 0.0]), None)
(1, 2)
>>> argmax([1.0, float("nan"), 2.0, float("nan")]), argmax([-0.0, 0.0])
(1, 0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["argmax", "choose"]


def choose(score: list[float] | np.ndarray, cost_weight: float, cost: np.ndarray,
           adapter: np.ndarray | None) -> int:
    """The chosen target's index (``cost``: per target; ``adapter``: logits to add, or None)."""
    s = score.tolist() if isinstance(score, np.ndarray) else score
    if cost_weight != 0.0:  # without a price nothing is subtracted: x - 0.0 is x, bit for bit
        s = [v - cost_weight * c for v, c in zip(s, cost.tolist())]
    if adapter is not None:
        s = [v + a for v, a in zip(s, adapter.tolist())]
    return argmax(s)


def argmax(values: list[float]) -> int:
    """The index of the first maximum, or of the first NaN (as :func:`numpy.argmax`)."""
    best = 0
    top = values[0]
    for i in range(1, len(values)):
        if top != top:  # a NaN is the answer
            break
        v = values[i]
        if v > top or v != v:
            best, top = i, v
    return best
