"""Shared helpers for the learning-core tests (pure unit tests: no servers, no files)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from learn import LearnInputError, to_bytes


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def rejects() -> Callable[..., LearnInputError]:
    """``rejects(core, field, fn, *args, **kw)``: the call fails naming ``field``, state unchanged."""

    def check(core: Any, field: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> LearnInputError:
        before = to_bytes(core)
        with pytest.raises(LearnInputError) as info:
            fn(*args, **kw)
        assert info.value.field == field, (info.value.field, str(info.value))
        assert to_bytes(core) == before, "a rejected call changed the core's state"
        return info.value

    return check
