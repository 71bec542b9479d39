"""The examples in the workers' docstrings run (``workers`` is not among pytest's doctest paths)."""

import doctest
import importlib

import pytest

MODULES = ["workers.weight_store", "workers.store_keys", "workers.store_record", "workers.events", "workers.cores",
           "workers.drain", "workers.service", "workers.samples", "workers.boundary"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
