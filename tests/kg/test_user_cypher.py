"""Users' own as-of Cypher: the README examples run as written, and writes are refused."""

import json
import subprocess
import sys

import pytest

from kg.config import GRAPH_SERVERS
from kg.cypher import CYPHER_DIR
from kg.errors import InvalidInput, ReadOnlyViolation
from kg.graph import Graph
from kg.store import EdgeStore
from kg.temporal import NewEdge
from kg.usercypher import run_read_only

T1, T2 = 1_546_300_800_000, 1_622_505_600_000
C1, C2 = T1 + 5, T2 + 10


@pytest.fixture
def alice(store, ns):
    store.insert_edge(ns, NewEdge("acme", "alice", "Acme", "works_at", 1.0, "{}", T1, None, C1))
    store.contradict(ns, NewEdge("globex", "alice", "Globex", "works_at", 1.0, "{}", T2, None, C2), ["acme"], C2)
    return ns


def example(name):
    return (CYPHER_DIR / "examples" / f"{name}.cypher").read_text()


def test_current_belief_example(session, alice):
    rows = run_read_only(session.graph, example("works_at_current"), ns=alice, t=T1 + 1, known_at=C2)
    assert [r["employer"] for r in rows] == ["Acme"]
    rows = run_read_only(session.graph, example("works_at_current"), ns=alice, t=T2 + 1, known_at=C2)
    assert [r["employer"] for r in rows] == ["Globex"]


def test_as_known_example_on_both_axes(session, alice):
    rows = run_read_only(session.graph, example("works_at_as_known"), ns=alice, t=T2 + 1, known_at=C2 - 1)
    assert [(r["employer"], r["version"]) for r in rows] == [("Acme", 1)]
    rows = run_read_only(session.graph, example("works_at_as_known"), ns=alice, t=T2 + 1, known_at=C2)
    assert [r["employer"] for r in rows] == ["Globex"]


def test_belief_changes_example(session, alice):
    rows = run_read_only(session.graph, example("belief_changes"), ns=alice, t=0, known_at=0)
    assert [(r["edge"], r["version"]) for r in rows] == [("acme", 1), ("acme", 2), ("globex", 1)]
    assert rows[1]["invalidated_by"] == "globex" and rows[1]["valid_to"] == T2


def test_kg_cypher_cli_binds_t_and_known_at(kg_env, alice):
    query = example("works_at_as_known")
    base = [sys.executable, "-m", "service.cli", "cypher", query, "-n", alice, "--at", "2021-07-01"]
    out = subprocess.run(base + ["--known-at", str(C2 - 1), "--json"], env=kg_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["employer"] for r in json.loads(out.stdout)] == ["Acme"]
    table = subprocess.run(base, env=kg_env, capture_output=True, text=True, timeout=120)
    assert "Globex" in table.stdout and "employer" in table.stdout.splitlines()[0]


def test_kg_cypher_cli_takes_negative_iso_years(kg_env, ns):
    """A BC date after --at / --known-at is a value, not an option (it was "expected one argument")."""
    from kg.timeparse import to_ms

    out = subprocess.run([sys.executable, "-m", "service.cli", "cypher", "RETURN $t AS t, $known_at AS k", "-n", ns,
                          "--at", "-0431", "--known-at", "-0431-03-15", "--json"],
                         env=kg_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"t": to_ms("-0431", "t"), "k": to_ms("-0431-03-15", "k")}]


@pytest.mark.parametrize("query", [
    "CREATE (n:Entity {ns: $ns, name: 'intruder'}) RETURN n.name AS name",
    "MATCH (a:Entity {ns: $ns, name: 'alice'}) SET a.hacked = true RETURN a.name AS name",
    "MATCH ()-[r:FACT]->() WHERE r.ns = $ns DELETE r",
])
def test_writes_are_refused_and_leave_nothing(session, alice, query):
    with pytest.raises(ReadOnlyViolation):
        run_read_only(session.graph, query, ns=alice, t=0, known_at=0)
    rows = run_read_only(session.graph, example("belief_changes"), ns=alice, t=0, known_at=0)
    assert len(rows) == 3
    names = run_read_only(session.graph, "MATCH (n:Entity) WHERE n.ns = $ns RETURN n.name AS name, n.hacked AS h",
                          ns=alice, t=0, known_at=0)
    assert sorted(r["name"] for r in names) == ["Acme", "Globex", "alice"]
    assert all(r["h"] is None for r in names)


def test_kg_cypher_cli_refuses_a_write(kg_env, ns):
    out = subprocess.run([sys.executable, "-m", "service.cli", "cypher", "CREATE (n:Entity {ns: $ns, name: 'x'})", "-n", ns],
                         env=kg_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "refused" in out.stderr


@pytest.fixture(scope="module", params=GRAPH_SERVERS)
def server_graph(request, graph_settings):
    """A graph of each supported server, with the service's schema."""
    with Graph(graph_settings(request.param)) as graph:
        graph.apply_schema()
        yield graph


SERVICE_CONSTRAINTS = {"entity_key", "fact_by_src_time", "fact_version_key", "frontier_key"}


@pytest.mark.parametrize("query", [
    "UNWIND range(1,3) AS i CALL { WITH i CREATE (:Pwn {i:i}) } IN TRANSACTIONS OF 1 ROWS RETURN count(*)",
    "MATCH (a:Entity {ns: $ns, name: 'alice'}) CALL { WITH a SET a.hacked = true } IN TRANSACTIONS RETURN count(*)",
    "MATCH (a:Entity {ns: $ns}) CALL { WITH a DETACH DELETE a } IN TRANSACTIONS RETURN count(*)",
    "CREATE INDEX pwn_index IF NOT EXISTS FOR (n:Pwn) ON (n.i)",
    "DROP INDEX pwn_index IF EXISTS",
    "CREATE CONSTRAINT pwn_key IF NOT EXISTS FOR (n:Pwn) REQUIRE n.i IS UNIQUE",
    "DROP CONSTRAINT entity_key IF EXISTS",
    "DROP CONSTRAINT fact_version_key",
    "CALL db.createLabel('Pwn')",
    "MATCH (a:Entity {ns: $ns}) FOREACH (x IN [1] | SET a.hacked = true) RETURN count(*)",
    "merge (n:Pwn {i: 1}) return n",
])
def test_disguised_writes_are_refused_before_they_run(server_graph, query, ns):
    """Issue 12: these answered "refused" yet persisted; now none of them runs at all."""
    store = EdgeStore(server_graph)
    store.insert_edge(ns, NewEdge("acme", "alice", "Acme", "works_at", 1.0, "{}", T1, None, C1))
    with pytest.raises(ReadOnlyViolation):
        run_read_only(server_graph, query, ns=ns, t=0, known_at=0)
    with server_graph.driver.session(database=server_graph.database) as session:
        assert session.run("MATCH (n:Pwn) RETURN count(n) AS c").single()["c"] == 0
        names = session.run("MATCH (n:Entity) WHERE n.ns = $ns RETURN n.name AS name, n.hacked AS h",
                            ns=ns).data()
        if server_graph.server == "neo4j":
            constraints = {r["name"] for r in session.run("SHOW CONSTRAINTS YIELD name").data()}
            indexes = {r["name"] for r in session.run("SHOW INDEXES YIELD name").data()}
            assert SERVICE_CONSTRAINTS <= constraints and "pwn_key" not in constraints
            assert "pwn_index" not in indexes
    assert sorted(r["name"] for r in names) == ["Acme", "alice"] and all(r["h"] is None for r in names)
    assert [v["id"] for v in store.query_at(ns, "alice", T1 + 1)] == ["acme"]


@pytest.mark.parametrize("query", [
    "MATCH (n:Entity) WHERE n.ns = $ns AND n.set = 1 RETURN n.name AS `SET`",
    "MATCH (n:Entity {ns: $ns}) RETURN 'CREATE (x)' AS text, n.name AS name // DELETE",
    "MATCH (n:Entity {ns: $ns}) WITH {create: 1, merge: n.name} AS m RETURN m.create AS c",
])
def test_reads_that_mention_write_words_still_run(server_graph, query, ns):
    EdgeStore(server_graph).insert_edge(ns, NewEdge("e", "alice", "Acme", "r", 1.0, "{}", T1, None, C1))
    run_read_only(server_graph, query, ns=ns, t=0, known_at=0)


def test_a_long_query_is_stopped_by_the_timeout(server_graph):
    # a cross product of ~10 s on each server (ArcadeDB cannot cancel it: keep its share small)
    n = 30_000 if server_graph.server == "neo4j" else 4_000
    with pytest.raises(InvalidInput, match="KG_CYPHER_TIMEOUT_S"):
        run_read_only(server_graph, f"UNWIND range(1, {n}) AS x UNWIND range(1, {n}) AS y RETURN count(*) AS n",
                      timeout_s=0.5, t=0, known_at=0, ns="x")


def test_rows_are_limited(server_graph):
    rows = run_read_only(server_graph, "UNWIND range(1, 50) AS x RETURN x", max_rows=10, t=0, known_at=0, ns="x")
    assert [r["x"] for r in rows] == list(range(1, 11)) and rows.truncated
    rows = run_read_only(server_graph, "UNWIND range(1, 10) AS x RETURN x", max_rows=10, t=0, known_at=0, ns="x")
    assert len(rows) == 10 and not rows.truncated
