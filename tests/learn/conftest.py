"""Shared helpers for the learning-core tests (pure unit tests: no servers, no files)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# tests/conftest.py puts tests/ on sys.path, where the folder tests/learn would otherwise shadow
# the real ``learn`` package as a namespace package when pytest is started as ``pytest``.
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from learn import LearnInputError, to_bytes  # noqa: E402


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
