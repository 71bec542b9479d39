"""The graph verbs: one table, ``GRAPH_VERBS``, each a body model (:mod:`kg.models`) and a handler
on the session's edge store.  ``health`` merges the sections the composition root gives the
session; :func:`graph_health` is the graph's.
"""

from __future__ import annotations

from typing import Any

from kg import models as m
from kg.dispatch import Session, Verb
from kg.redact import redact_url


def insert_edge(session: Session, body: m.InsertEdge) -> dict:
    """Insert a fact (a new version closes the one it replaces on a functional relation)."""
    return session.store.insert_edge(body.namespace, body.to_new_edge())


def get_edge(session: Session, body: m.GetEdge) -> dict:
    """The latest version of an edge."""
    return session.store.get_edge(body.namespace, body.edge_id)


def history(session: Session, body: m.History) -> list[dict]:
    """Every version of an edge, oldest first."""
    return session.store.history(body.namespace, body.edge_id)


def query_at(session: Session, body: m.QueryAt) -> list[dict]:
    """The facts about ``src`` that held at ``t``, as known at ``known_at`` (default: now)."""
    return session.store.query_at(body.namespace, body.src, body.t, body.known_at)


def query_at_many(session: Session, body: m.QueryAtMany) -> list[list[dict]]:
    """Many ``query_at`` questions in one read: the answers in order, each as ``query_at`` gives it."""
    return session.store.query_at_many(body.namespace, [(q.src, q.t, q.known_at) for q in body.questions])


def neighbourhood(session: Session, body: m.Neighbourhood) -> list[dict]:
    """The facts up to ``hops`` steps out of ``src`` that held at ``t``, as known at ``known_at`` (default: now)."""
    return session.store.neighbourhood(body.namespace, body.src, body.hops, body.t, body.known_at, body.max_edges)


def neighbourhood_many(session: Session, body: m.NeighbourhoodMany) -> list[list[dict]]:
    """Many ``neighbourhood`` walks in one read, hop by hop together: the answers in order."""
    walks = [(w.src, w.hops, w.t, w.known_at) for w in body.questions]
    return session.store.neighbourhood_many(body.namespace, walks, body.max_edges)


def invalidate_many(session: Session, body: m.InvalidateMany) -> list[dict]:
    """Many invalidations in one transaction, each as ``invalidate_edge`` makes it; a bad one changes nothing."""
    items = [(i.edge_id, i.invalid_at, i.expired_at) for i in body.invalidations]
    return session.store.invalidate_many(body.namespace, items)


def invalidate_edge(session: Session, body: m.InvalidateEdge) -> dict:
    """Close an edge's valid time (a new version; history kept)."""
    return session.store.invalidate_edge(body.namespace, body.edge_id, body.invalid_at, body.expired_at)


def contradict(session: Session, body: m.Contradict) -> dict:
    """Insert a fact and close the facts it contradicts, in one transaction."""
    edge = body.new_edge.to_new_edge(default_created_at=body.now_ms)
    return session.store.contradict(body.namespace, edge, list(body.contradicts), body.now_ms)


def ingest(session: Session, body: m.Ingest) -> dict:
    """Many edges in one call, and `kg ingest`'s contradictions and invalidations; a bad row is rejected by index, the others are stored."""
    from kg.ingest import changes_from_records

    changes, rejected = changes_from_records(body.edges, body.created_at)
    result = session.store.insert_many(body.namespace, changes)
    return {
        "inserted": result.inserted, "unchanged": result.unchanged,
        "invalidated": result.invalidated,
        "rejected": [{"index": i, "error": e} for i, e in rejected]
        + [{"id": i, "error": e} for i, e in result.rejected],
    }


def health(session: Session, body: m.Empty) -> dict:
    """Graph and Redis reachability, and the learning state of a namespace."""
    return session.health(body)


def graph_health(session: Session, body: Any) -> dict:
    """The graph section of ``health``: a fresh connection, so a dead server shows at once."""
    from kg.graph import ping_graph

    settings = session.settings
    graph_ok, graph_detail = ping_graph(settings) if settings.graph_uri else (False, "not configured")
    return {"graph": {"reachable": graph_ok, "uri": redact_url(settings.graph_uri), "detail": graph_detail}}


def _verb(name: str, model: type, handler: Any) -> Verb:
    return Verb(name, model, handler, summary=(handler.__doc__ or "").strip().split("\n")[0])


GRAPH_VERBS: tuple[Verb, ...] = (
    _verb("insert_edge", m.InsertEdge, insert_edge),
    _verb("get_edge", m.GetEdge, get_edge),
    _verb("history", m.History, history),
    _verb("query_at", m.QueryAt, query_at),
    _verb("query_at_many", m.QueryAtMany, query_at_many),
    _verb("neighbourhood", m.Neighbourhood, neighbourhood),
    _verb("neighbourhood_many", m.NeighbourhoodMany, neighbourhood_many),
    _verb("invalidate_edge", m.InvalidateEdge, invalidate_edge),
    _verb("invalidate_many", m.InvalidateMany, invalidate_many),
    _verb("contradict", m.Contradict, contradict),
    _verb("ingest", m.Ingest, ingest),
    _verb("health", m.Empty, health),
)
