"""The shared input checks of the cores (learn/_check.py): what their errors say."""

from __future__ import annotations

import pytest

from learn import _check
from learn.errors import LearnInputError


@pytest.mark.parametrize("lo, hi, value, said", [
    (0.0, None, -1.0, "cost_weight: must be at least 0.0"),
    (None, 1.0, 2.0, "cost_weight: must be at most 1.0"),
    (0.0, 1.0, 2.0, r"cost_weight: must be within \[0.0, 1.0\]"),
])
def test_a_number_out_of_bounds_is_refused_with_the_bound_it_broke(lo, hi, value, said):
    with pytest.raises(LearnInputError, match=f"^{said}$"):
        _check.number(value, "cost_weight", lo=lo, hi=hi)
    inside = 0.5 if lo is not None and hi is not None else (lo if lo is not None else hi)
    assert _check.number(inside, "cost_weight", lo=lo, hi=hi) == inside  # the bound itself is accepted
