"""Subgraphs for attention, read from the graph as of a time, and node embeddings written to it.

``fetch`` takes the ``hops``-neighbourhood of ``src`` valid at ``t`` (as currently believed, or as
believed at ``known_at``) from ``EdgeStore.neighbourhood`` (one read per hop for the whole
frontier: small subjects scanned whole, large ones by time keys), then reads the embeddings that
``upsert_node`` stored on the ``Entity`` nodes. Edge recency for attention is measured from the
edge's ``valid_from``.
"""

from __future__ import annotations

from typing import Any

from kg.cypher import q
from kg.graph import Graph, rows
from kg.store import EdgeStore


def upsert_embeddings(graph: Graph, ns: str, nodes: list[dict[str, Any]]) -> int:
    """Create or update ``Entity`` nodes with an ``embedding`` list; returns how many."""
    def work(tx: Any) -> int:
        return tx.run(q("upsert_node_embeddings"), ns=ns, rows=nodes).single()["upserted"]

    return graph.write(work)


def fetch(store: EdgeStore, ns: str, src: str, hops: int, t: int, known_at: int | None,
          max_edges: int, dim: int) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """(nodes with embeddings of ``dim`` values, edges) of the ``hops``-neighbourhood of ``src``
    valid at ``t``. Embeddings of another length are not read: attention skips them, and this
    way at most ``(max_edges + 1) x dim`` values come back (``learn.limits.ATTEND_MAX_VALUES``)."""
    found = store.neighbourhood(ns, src, hops, t, known_at, max_edges)
    edges = [{"src": r["src"], "dst": r["dst"], "relation": r["relation"], "weight": float(r["weight"]),
              "t_ms": int(r["valid_from"])} for r in found]
    names = sorted({src} | {r["dst"] for r in found})
    embedded = store.graph.read(lambda tx: rows(tx, q("node_embeddings"), ns=ns, names=names, dim=dim))
    nodes = {r["name"]: [float(x) for x in r["embedding"]]  # by name: the answer's last bits
             for r in sorted(embedded, key=lambda r: r["name"])  # depend on the nodes' order
             if isinstance(r["embedding"], list)}
    return nodes, edges
