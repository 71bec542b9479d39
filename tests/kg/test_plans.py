"""Every statement on a read or write path is planned as an index seek by Neo4j itself.

``EXPLAIN`` returns the plan without running the statement.  A statement that
would touch the whole graph (all nodes, every node of a label, every FACT
relationship, a cartesian product) fails here, with the operators it got, before
it can be slow in production.  Runs on a real Neo4j 5 (``neo4j_settings``).
"""

from __future__ import annotations

import re

import pytest

from kg.cypher import load_all
from kg.graph import Graph
from kg.interval_index import OPEN, as_of_keys
from kg.store import EdgeStore
from kg.temporal import NewEdge

# Operators that read more than what the statement's keys name.
WHOLE_GRAPH = {
    "AllNodesScan", "NodeByLabelScan", "UnionNodeByLabelsScan", "IntersectionNodeByLabelsScan",
    "DirectedRelationshipTypeScan", "UndirectedRelationshipTypeScan",
    "DirectedAllRelationshipsScan", "UndirectedAllRelationshipsScan",
    "CartesianProduct", "NodeIndexScan", "DirectedRelationshipIndexScan",
    "UndirectedRelationshipIndexScan",
}
PLAN_EDGES = 20_000
# Statements that are not on a data path: schema DDL and the health ping.
NOT_DATA_PATH = {"schema", "health"}

SAMPLE = {
    "ns": "plan-ns", "src": "s1", "srcs": ["s1", "s2", "s3"], "id": "e1", "ids": ["e1", "e2"],
    "t": 1_000, "known_at": 2_000, "through": 2_000, "open": OPEN, "limit": 64,
    "keys": as_of_keys(1_000, 2_000), "relations": ["works_at"],
    "changes": {"e1": [5, 7, [["e1", 2, "s", "d", "r", 1.0, "{}", 0, 5, 5, OPEN, 0, None, "h", 2]]]},
    "asked": {"s1": [[1_000, None]], "s2": [[1_000, 2_000]]}, "questions": [[1_000, None], [1_000, 2_000]],
    "names": ["a", "b"], "turn": "0f", "dim": 8, "rows": [["e1", 1, "s", "d", "r", 1.0, "{}", 0, OPEN, 0, OPEN, 0, None, "h", 2]],
    "pairs": [{"src": "s", "relation": "works_at", "valid_from": 0, "edge_id": "e1", "exact": True}],
}


def operators(plan: dict) -> list[str]:
    """Operator names of a plan tree, without Neo4j's ``@neo4j`` suffix."""
    name = plan["operatorType"].split("@", 1)[0]
    return [name] + [op for child in plan.get("children", []) for op in operators(child)]


def explain(graph: Graph, text: str) -> tuple[str, list[str], str]:
    params = {name: SAMPLE[name] for name in set(re.findall(r"\$([A-Za-z_]\w*)", text))}
    with graph.driver.session(database=graph.database) as session:
        summary = session.run("EXPLAIN " + text, params).consume()
    return summary.query_type, operators(summary.plan), summary.plan["operatorType"]


def seek_details(graph: Graph, text: str) -> list[str]:
    """The predicates of every index seek in the plan (Neo4j's ``Details``, cache hints cut)."""
    params = {name: SAMPLE[name] for name in set(re.findall(r"\$([A-Za-z_]\w*)", text))}
    with graph.driver.session(database=graph.database) as session:
        plan = session.run("EXPLAIN " + text, params).consume().plan
    found, todo = [], [plan]
    while todo:
        node = todo.pop()
        if "Seek" in node["operatorType"]:
            found.append(str(node.get("args", {}).get("Details", "")).split(", cache[", 1)[0])
        todo.extend(node.get("children", []))
    return found


DATA_PATH = sorted(name for name, s in load_all().items() if s.area not in NOT_DATA_PATH)


@pytest.fixture(scope="module")
def neo4j_graph(neo4j_settings):
    """Neo4j with enough data that the planner chooses by statistics, as in production.

    On an empty store every plan looks cheap; with data, Neo4j picked the (ns, edge_id,
    version) index for ``src IN $srcs AND tkey IN $keys`` (reading the namespace in edge
    id order for the ``ORDER BY``): a scan of the namespace that only the seek's predicates
    show.  So a namespace of 20,000 versions is loaded first and the statistics refreshed.
    """
    with Graph(neo4j_settings) as graph:
        graph.apply_schema()
        store = EdgeStore(graph, ("works_at",))
        for start in range(0, PLAN_EDGES, 2_000):
            store.insert_many(SAMPLE["ns"], [
                NewEdge(f"e{i}", f"s{i % 2_000}", f"d{i}", "works_at" if i % 5 == 0 else "knows", 1.0, "{}",
                        i * 1_000, None, 10 + i)
                for i in range(start, start + 2_000)], expect_new=True)
        with graph.driver.session(database=graph.database) as session:
            session.run("CALL db.resampleOutdatedIndexes()").consume()
            session.run("CALL db.clearQueryCaches()").consume()
        yield graph


@pytest.mark.parametrize("name", DATA_PATH)
def test_statement_seeks_an_index_on_neo4j(neo4j_graph, name):
    query_type, ops, root = explain(neo4j_graph, load_all()[name])
    assert root.endswith("@neo4j"), f"{name}: not planned by Neo4j ({root})"
    scans = sorted(set(ops) & WHOLE_GRAPH)
    assert not scans, f"{name}: plan reads the whole graph with {scans}: {ops}"
    assert any("IndexSeek" in op or "IndexContainsScan" in op for op in ops), f"{name}: no index seek in {ops}"
    assert query_type in ("r", "rw", "w")
    for details in seek_details(neo4j_graph, load_all()[name]):
        keyed = [p for p in details.split(" WHERE ", 1)[1].split(" AND ") if "IS NOT NULL" not in p]
        assert len(keyed) >= 2, f"{name}: the seek reads a whole namespace: {details}"


def test_whole_graph_reads_are_caught(neo4j_graph):
    """The check above can fail: a statement without the indexed keys is reported."""
    _, ops, _ = explain(neo4j_graph, "MATCH ()-[r:FACT]->() WHERE r.weight > 1 RETURN r")
    assert set(ops) & WHOLE_GRAPH
    _, ops, _ = explain(neo4j_graph, "MATCH (a:Entity), (b:Entity) RETURN a, b")
    assert {"CartesianProduct", "NodeByLabelScan"} & set(ops)


def test_reads_are_planned_as_reads(neo4j_graph):
    """The read statements are read-only by Neo4j's own account (`kg cypher` relies on it)."""
    for name in ("query_current", "query_known_at", "scan_subject_current", "history", "current_by_ids"):
        query_type, _, _ = explain(neo4j_graph, load_all()[name])
        assert query_type == "r", name


def test_the_default_graph_server_is_neo4j_itself(stack_settings, neo4j_graph):
    """The Bolt agent names Neo4j 5.26 (ArcadeDB's says "Neo4j/5.26.0 compatible (ArcadeDB …)")."""
    with neo4j_graph.driver.session(database=neo4j_graph.database) as session:
        agent = session.run("RETURN 1").consume().server.agent
    assert agent.startswith("Neo4j/5.26.") and "compatible" not in agent and "ArcadeDB" not in agent
    if stack_settings.graph_server == "neo4j":  # unless KG_GRAPH_SERVER says otherwise
        assert stack_settings.graph_uri == neo4j_graph.settings.graph_uri
