"""The store tests run on both supported graph servers, Neo4j and ArcadeDB.

The bi-temporal rules must give exactly the same answers on each, so every test
here gets ``store`` once per server (the other server is started on first use by
``graph_settings`` in tests/conftest.py).
"""

from __future__ import annotations

import pytest

from kg.config import GRAPH_SERVERS


@pytest.fixture(scope="session", params=GRAPH_SERVERS)
def store(request: pytest.FixtureRequest, graph_settings):
    from kg.graph import Graph
    from kg.store import EdgeStore

    settings = graph_settings(request.param)
    with Graph(settings) as graph:
        graph.apply_schema()
        yield EdgeStore(graph, settings.functional_relations)
