"""Subgraphs for attention, read from the graph as of a time, and node embeddings written to it.

``fetch`` walks ``hops`` steps out from ``src`` along edges valid at ``t`` (as currently believed,
or as believed at ``known_at``), one statement per hop with ``r.src IN $srcs`` (an index lookup),
then reads the embeddings that ``upsert_node`` stored on the ``Entity`` nodes. Edge recency for
attention is measured from the edge's ``valid_from``.
"""

from __future__ import annotations

from typing import Any

from kg.cypher import q
from kg.graph import Graph, rows
from kg.interval_index import OPEN, as_of_keys, current_keys


def upsert_embeddings(graph: Graph, ns: str, nodes: list[dict[str, Any]]) -> int:
    """Create or update ``Entity`` nodes with an ``embedding`` list; returns how many."""
    def work(tx: Any) -> int:
        return tx.run(q("upsert_node_embeddings"), ns=ns, rows=nodes).single()["upserted"]

    return graph.write(work)


def fetch(graph: Graph, ns: str, src: str, hops: int, t: int, known_at: int | None,
          max_edges: int) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """(nodes with embeddings, edges) of the ``hops``-neighbourhood of ``src`` valid at ``t``."""
    if known_at is None:
        statement, extra = q("subgraph_edges_current"), {"keys": current_keys(t)}
    else:
        statement, extra = q("subgraph_edges_known_at"), {"known_at": known_at,
                                                          "keys": as_of_keys(t, known_at)}

    def work(tx: Any) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
        seen = {src}
        frontier = [src]
        edges: list[dict[str, Any]] = []
        ids: set[str] = set()
        for _ in range(hops):
            if not frontier or len(edges) >= max_edges:
                break
            found = rows(tx, statement, ns=ns, srcs=frontier, t=t, open=OPEN,
                         limit=max_edges - len(edges), **extra)
            nxt = []
            for r in sorted(found, key=lambda r: r["edge_id"]):
                if r["edge_id"] in ids or len(edges) >= max_edges:
                    continue
                ids.add(r["edge_id"])
                edges.append({"src": r["src"], "dst": r["dst"], "relation": r["relation"],
                              "weight": float(r["weight"]), "t_ms": int(r["valid_from"])})
                if r["dst"] not in seen:
                    seen.add(r["dst"])
                    nxt.append(r["dst"])
            frontier = sorted(nxt)
        found = rows(tx, q("node_embeddings"), ns=ns, names=sorted(seen))
        nodes = {r["name"]: [float(x) for x in r["embedding"]]  # by name: the answer's last bits
                 for r in sorted(found, key=lambda r: r["name"])  # depend on the nodes' order
                 if isinstance(r["embedding"], list)}
        return nodes, edges

    return graph.read(work)
