"""Shared fixtures: one real local stack (ArcadeDB over Bolt + redis-server) per test run.

The stack lives in a temporary KG_HOME and is stopped at the end.  Tests that
need isolation get their own namespace, which isolates tenants completely, so
nothing is wiped between tests.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from kg.config import Settings
from kg.stack import Stack

_counter = itertools.count()


@pytest.fixture(scope="session")
def kg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kg-home")


@pytest.fixture(scope="session")
def stack_settings(kg_home: Path) -> Settings:
    """Settings of a running local stack (started once, stopped at the end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env["KG_HOME"] = str(kg_home)
    stack = Stack(Settings.from_env(env))
    stack.up(progress=lambda _m: None)
    settings = Settings.from_env(env)
    yield settings
    stack.down(progress=lambda _m: None)


@pytest.fixture(scope="session")
def kg_env(kg_home: Path, stack_settings: Settings) -> dict[str, str]:
    """Environment for ``kg`` subprocesses that should find the test stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env["KG_HOME"] = str(kg_home)
    return env


@pytest.fixture(scope="session")
def session(stack_settings: Settings):
    from kg.dispatch import Session

    with Session(stack_settings) as s:
        yield s


@pytest.fixture(scope="session")
def store(session):
    return session.store


@pytest.fixture
def ns() -> str:
    """A fresh namespace: a tenant no other test touches."""
    return f"t{os.getpid()}-{time.time_ns()}-{next(_counter)}"
