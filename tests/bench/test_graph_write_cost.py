"""bench.graph_write_cost on the test Neo4j: every variant writes every edge, and the probe leaves
nothing behind (its relationships, Entities and schema are deleted)."""

from __future__ import annotations

from bench.graph_write_cost import VARIANTS, run
from kg.graph import Graph


def test_write_cost_probe_times_every_variant_and_cleans_up(neo4j_settings):
    with Graph(neo4j_settings) as graph:
        result = run(graph, n=400, batch=50)
        with graph.driver.session(database=graph.database) as session:
            left = session.run("MATCH ()-[r]->() WHERE type(r) STARTS WITH 'WriteCost' RETURN count(r) AS n").single()["n"]
            entities = session.run("MATCH (e:Entity) WHERE e.ns STARTS WITH 'write-cost-' RETURN count(e) AS n").single()["n"]
            schema = [r["name"] for r in session.run("SHOW INDEXES YIELD name WHERE name STARTS WITH 'write_cost_'").data()]
    assert left == 0 and entities == 0 and schema == []
    assert set(result["variants"]) == set(VARIANTS) and result["batches_timed"] == 8 - 3
    service = result["variants"]["service"]
    assert service["ratio_to_service"] == 1.0
    assert all(v["statement_ms"] > 0 and v["commit_ms"] > 0 for v in result["variants"].values())
