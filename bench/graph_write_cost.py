"""Where a batch write's time goes on Neo4j: the service's write against it with less schema.

The same batches of new edges, written with parts of the service's schema taken away, same run.

    python -m bench.graph_write_cost                 # 60,000 edges of the 1M stream, 2,000 per transaction
    python -m bench.graph_write_cost --edges 100000 --batch 5000

Every variant writes the same rows (``create_versions`` of ``bench.graph_stream``'s stream, as
``kg ingest`` builds them) into its own relationship type with its own schema, in one probe
namespace of the running stack's Neo4j:

- ``service``: the statement and the FACT schema the service keeps (``cypher/schema/``: the
  subject key and the version key, each a unique constraint), the baseline of every ratio;
- ``plain_subject_index``: the subject key as a plain range index (uniqueness is the version
  key's job);
- ``no_unique_keys``: both keys plain indexes;
- ``no_relationship_indexes``: no index on the relationship;
- ``no_endpoint_seek``: no relationship index, and each edge's endpoints found by element id
  (looked up before, untimed) instead of a seek of the Entity index: what is left is Neo4j
  storing relationships and committing.

Per batch, an untimed statement first creates the batch's Entity nodes (the first writer of a
batch would otherwise pay for them); the variants then run in an order rotated batch by batch,
each in its own transaction, timing the statement and the commit apart.  Medians per batch over
all but the first three batches; results in ``bench/results/graph_write_cost.json``.  The probe
relationships, nodes and schema are deleted at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from itertools import islice

from tqdm import tqdm

from bench._common import running_graph, save
from bench.graph_stream import stream
from bench.peer_mariadb import batches
from kg.cypher import q
from kg.graph import BulkRows, Graph

WARM_UP_BATCHES = 3
SUBJECT_KEY = "(r.ns, r.src, r.tkey, r.edge_id, r.version)"
VERSION_KEY = "(r.ns, r.edge_id, r.version)"


def service_key(name: str, kind: str) -> str:
    """The service's schema statement ``name`` (``cypher/schema/``) for relationship type ``kind``."""
    text = "\n".join(line for line in q(name).splitlines() if not line.startswith("//"))
    probe = text.replace("[r:FACT]", f"[r:{kind}]").replace(f"CONSTRAINT {name} ", f"CONSTRAINT write_cost_{name} ")
    assert probe.count(kind) == 1 and f"write_cost_{name}" in probe, f"{name} changed shape: {text}"
    return probe


# variant -> (relationship type, schema statements)
VARIANTS = {
    "service": ("WriteCostService", [service_key(name, "WriteCostService") for name in ("fact_by_src_time", "fact_version_key")]),
    "plain_subject_index": ("WriteCostPlainSubject", [f"CREATE INDEX write_cost_plain_subject_subject IF NOT EXISTS FOR ()-[r:WriteCostPlainSubject]-() ON {SUBJECT_KEY}",
                                                      f"CREATE CONSTRAINT write_cost_plain_subject_version IF NOT EXISTS FOR ()-[r:WriteCostPlainSubject]-() REQUIRE {VERSION_KEY} IS UNIQUE"]),
    "no_unique_keys": ("WriteCostNoUnique", [f"CREATE INDEX write_cost_no_unique_subject IF NOT EXISTS FOR ()-[r:WriteCostNoUnique]-() ON {SUBJECT_KEY}",
                                             f"CREATE INDEX write_cost_no_unique_version IF NOT EXISTS FOR ()-[r:WriteCostNoUnique]-() ON {VERSION_KEY}"]),
    "no_relationship_indexes": ("WriteCostBare", []),
    "no_endpoint_seek": ("WriteCostKnownEnds", []),
}
ENTITIES = "UNWIND $names AS name MERGE (e:Entity {ns: $ns, name: name}) RETURN name, elementId(e) AS id"
KNOWN_ENDS = """UNWIND $rows AS row
MATCH (a) WHERE elementId(a) = row[15]
MATCH (b) WHERE elementId(b) = row[16]
CREATE (a)-[r:WriteCostKnownEnds {ns: $ns, edge_id: row[0], version: row[1], src: row[2], dst: row[3],
  relation: row[4], weight: row[5], attributes: row[6], valid_from: row[7], valid_to: row[8],
  sys_from: row[9], sys_to: row[10], created_at: row[11], invalidated_by: row[12],
  content_hash: row[13], tkey: row[14]}]->(b)
RETURN count(r) AS created"""


def statement(variant: str) -> str:
    """The service's ``create_versions`` writing the variant's type (a constant substitution)."""
    kind = VARIANTS[variant][0]
    if variant == "no_endpoint_seek":
        return KNOWN_ENDS
    text = q("create_versions").replace("[r:FACT {", f"[r:{kind} {{")
    assert text != q("create_versions"), "create_versions no longer writes [r:FACT {...}]"
    return text


def run(graph: Graph, n: int, batch: int) -> dict:
    ns = "write-cost-" + secrets.token_hex(4)
    with graph.driver.session(database=graph.database) as session:
        for _, schema in VARIANTS.values():
            for ddl in schema:
                session.run(ddl).consume()
        session.run("CALL db.awaitIndexes(300)").consume()
    spent = {v: {"statement": [], "commit": []} for v in VARIANTS}
    names = list(VARIANTS)
    loads = batches(islice(stream(1_000_000), n), batch)
    try:
        for k, edges in enumerate(tqdm(loads, total=-(-n // batch), desc="write cost", unit=" batches")):
            rows = [e.first_version.row for e in edges]
            with graph.driver.session(database=graph.database) as session:
                found = session.run(ENTITIES, ns=ns, names=sorted({r[2] for r in rows} | {r[3] for r in rows})).data()
                ids = {r["name"]: r["id"] for r in found}
                for variant in names[k % len(names):] + names[:k % len(names)]:
                    tagged = BulkRows([r[0] + "." + variant, *r[1:]] for r in rows)  # ids unique per variant
                    if variant == "no_endpoint_seek":
                        tagged = BulkRows([*r, ids[r[2]], ids[r[3]]] for r in tagged)
                    tx = session.begin_transaction()
                    start = time.perf_counter()
                    created = tx.run(statement(variant), ns=ns, rows=tagged).single()["created"]
                    middle = time.perf_counter()
                    tx.commit()
                    if created != len(rows):
                        raise RuntimeError(f"{variant} wrote {created} of {len(rows)}")
                    if k >= WARM_UP_BATCHES:
                        spent[variant]["statement"].append(middle - start)
                        spent[variant]["commit"].append(time.perf_counter() - middle)
    finally:
        clean(graph, ns)
    service = statistics.median(a + b for a, b in zip(*spent["service"].values()))
    out = {"edges": n, "batch": batch, "batches_timed": len(spent["service"]["commit"]), "variants": {}}
    for variant, times in spent.items():
        total = statistics.median(a + b for a, b in zip(times["statement"], times["commit"]))
        out["variants"][variant] = {
            "statement_ms": statistics.median(times["statement"]) * 1e3,
            "commit_ms": statistics.median(times["commit"]) * 1e3,
            "total_ms": total * 1e3, "edges_per_s": batch / total, "ratio_to_service": total / service}
    return out


def clean(graph: Graph, ns: str) -> None:
    """Delete the probe relationships, the probe namespace's Entities and the probe schema."""
    with graph.driver.session(database=graph.database) as session:
        for kind, schema in VARIANTS.values():
            session.run(f"MATCH ()-[r:{kind}]->() CALL {{ WITH r DELETE r }} IN TRANSACTIONS OF 10000 ROWS").consume()
            for ddl in schema:
                name = ddl.split()[2]
                session.run(f"DROP {ddl.split()[1]} {name} IF EXISTS").consume()
        session.run("MATCH (e:Entity {ns: $ns}) CALL { WITH e DETACH DELETE e } IN TRANSACTIONS OF 10000 ROWS",
                    ns=ns).consume()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=60_000, help="stream edges each variant writes")
    parser.add_argument("--batch", type=int, default=2_000, help="edges per transaction")
    args = parser.parse_args()
    with Graph(running_graph("neo4j")) as graph:
        result = run(graph, args.edges, args.batch)
    path = save("graph_write_cost", result)
    print(f"{args.batch:,} edges per transaction, medians of {result['batches_timed']} batches:")
    for variant, r in result["variants"].items():
        print(f"  {variant:24s} statement {r['statement_ms']:6.1f} ms  commit {r['commit_ms']:6.1f} ms"
              f"  {r['edges_per_s']:8,.0f} edges/s  ratio {r['ratio_to_service']:.2f}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
