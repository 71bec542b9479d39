"""The exploration draw of one route, passed in: routing reads the router and changes nothing."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from learn import _check
from learn.errors import LearnInputError

__all__ = ["Draw", "check_draw"]


class Draw(NamedTuple):
    """The randomness of one route.

    ``u`` in [0, 1]: the route explores when ``u < epsilon``. ``k``, an integer of at least 0: an
    exploring route picks target ``k % len(targets)``. A route given no draw never explores (the
    greedy answer, whatever ``epsilon``); the caller owns the randomness, e.g. the service derives
    it from the state and the request, so that equal requests get equal answers.

    >>> d = Draw.from_rng(np.random.default_rng(0))
    >>> 0.0 <= d.u < 1.0 and d.k >= 0
    True
    """

    u: float
    k: int

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> Draw:
        """A uniform draw from ``rng`` (for a caller that keeps its own generator)."""
        return cls(float(rng.random()), int(rng.integers(2**63)))


def check_draw(draw: Any) -> tuple[float, int]:
    """``(u, k)`` of a :class:`Draw`; anything else raises LearnInputError naming ``draw``."""
    if not isinstance(draw, Draw):
        raise LearnInputError("draw", "expected a Draw(u, k)")
    u, k = draw
    if type(u) is not float or not 0.0 <= u <= 1.0:
        u = _check.number(u, "draw.u", lo=0.0, hi=1.0)
    if type(k) is not int or k < 0:
        k = _check.integer(k, "draw.k", lo=0)
    return u, k
