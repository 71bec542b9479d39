"""Shared fixtures: one real local stack (a graph server over Bolt + redis-server) per test run.

The graph server is Neo4j 5.26 unless ``KG_GRAPH_SERVER=arcadedb`` says otherwise;
``--graph=testcontainers`` runs the official ``neo4j:5.26`` image through
testcontainers instead (for a machine with Docker; untested on the build
machines, which have none).  Tests that must see both servers (the store
tests, the plan test) ask for ``graph_settings(server)``: the other server is
started once, graph only, beside the main stack's Redis.

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
from service.stack import Stack

_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--graph", choices=("local", "testcontainers"), default="local",
                     help="local: the server `kg up` starts (KG_GRAPH_SERVER); testcontainers: "
                          "the official neo4j:5.26 image (needs Docker)")


def _base_env(home: Path) -> dict[str, str]:
    """The caller's environment without KG_ settings, except the choice of graph server and
    its memory (a machine running several suites at once gives each a smaller graph server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    for name in ("KG_GRAPH_SERVER", "KG_GRAPH_HEAP", "KG_GRAPH_PAGECACHE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env["KG_HOME"] = str(home)
    return env


@pytest.fixture(scope="session")
def kg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kg-home")


@pytest.fixture(scope="session")
def _graph_container(request: pytest.FixtureRequest):
    """The official Neo4j image as the graph server, when ``--graph=testcontainers``."""
    if request.config.getoption("--graph") != "testcontainers":
        yield {}
        return
    try:
        from testcontainers.community.neo4j import Neo4jContainer
    except ImportError:
        from testcontainers.neo4j import Neo4jContainer

    password = "kg-test-password"
    with Neo4jContainer("neo4j:5.26", password=password) as container:
        yield {"KG_GRAPH_URI": container.get_connection_url(), "KG_GRAPH_PASSWORD": password,
               "KG_GRAPH_SERVER": "neo4j", "KG_GRAPH_USER": "neo4j", "KG_GRAPH_DATABASE": "neo4j"}


@pytest.fixture(scope="session")
def kg_env(kg_home: Path, _graph_container: dict[str, str]) -> dict[str, str]:
    """Environment for ``kg`` subprocesses that should find the test stack."""
    return dict(_base_env(kg_home), **_graph_container)


@pytest.fixture(scope="session")
def stack_settings(kg_env: dict[str, str]) -> Settings:
    """Settings of a running local stack (started once, stopped at the end)."""
    stack = Stack(Settings.from_env(kg_env))
    stack.up(progress=lambda _m: None)
    settings = Settings.from_env(kg_env)
    yield settings
    stack.down(progress=lambda _m: None)


@pytest.fixture(scope="session")
def graph_settings(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """``graph_settings(server)``: settings of a running ``server`` (neo4j or arcadedb).

    The main stack's server is returned as it is; the other one is started on first use
    in its own KG_HOME, graph only (no workers; the main stack's Redis), and stopped at
    the end of the run.
    """
    started: dict[str, tuple[Stack, Settings]] = {}

    def get(server: str) -> Settings:
        if server == stack_settings.graph_server:
            return stack_settings
        if server not in started:
            env = _base_env(tmp_path_factory.mktemp(f"kg-{server}"))
            env.update(KG_GRAPH_SERVER=server, KG_REDIS_URL=stack_settings.redis_url,
                       KG_UP_WORKERS="0", KG_UP_BEAT="false")
            stack = Stack(Settings.from_env(env))
            stack.up(progress=lambda _m: None)
            started[server] = (stack, Settings.from_env(env))
        return started[server][1]

    yield get
    for stack, _settings in started.values():
        stack.down(progress=lambda _m: None)


@pytest.fixture(scope="session")
def neo4j_settings(graph_settings) -> Settings:
    return graph_settings("neo4j")


@pytest.fixture(scope="session")
def session(stack_settings: Settings):
    from service.root import Session

    with Session(stack_settings) as s:
        yield s


@pytest.fixture(scope="session")
def store(session):
    return session.store


@pytest.fixture
def ns() -> str:
    """A fresh namespace: a tenant no other test touches."""
    return f"t{os.getpid()}-{time.time_ns()}-{next(_counter)}"
