"""Users' own as-of Cypher: the README examples run as written, and writes are refused."""

import json
import subprocess
import sys

import pytest

from kg.cypher import CYPHER_DIR
from kg.errors import ReadOnlyViolation
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
    base = [sys.executable, "-m", "kg.cli", "cypher", query, "-n", alice, "--at", "2021-07-01"]
    out = subprocess.run(base + ["--known-at", str(C2 - 1), "--json"], env=kg_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["employer"] for r in json.loads(out.stdout)] == ["Acme"]
    table = subprocess.run(base, env=kg_env, capture_output=True, text=True, timeout=120)
    assert "Globex" in table.stdout and "employer" in table.stdout.splitlines()[0]


def test_kg_cypher_cli_takes_negative_iso_years(kg_env, ns):
    """A BC date after --at / --known-at is a value, not an option (it was "expected one argument")."""
    from kg.timeparse import to_ms

    out = subprocess.run([sys.executable, "-m", "kg.cli", "cypher", "RETURN $t AS t, $known_at AS k", "-n", ns,
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
    out = subprocess.run([sys.executable, "-m", "kg.cli", "cypher", "CREATE (n:Entity {ns: $ns, name: 'x'})", "-n", ns],
                         env=kg_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "refused" in out.stderr
