"""The write half of the edge store: read the current versions a write acts on, write a plan.

``EdgeStore`` (kg.store) runs these inside one managed transaction per operation; the rules
between the read and the write are ``kg.temporal.Plan``'s.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

import neo4j

from kg.cypher import q
from kg.errors import GraphError
from kg.graph import BulkMap, BulkRows, StaleRead, rows
from kg.interval_index import OPEN
from kg.temporal import NewEdge, Plan, Version


def current_versions(tx: neo4j.ManagedTransaction, ns: str, ids: list[str]) -> dict[str, Version]:
    """The current version of each existing id.

    An edge that has versions but not exactly one current version was read
    halfway through another transaction's commit (seen on ArcadeDB under racing
    invalidations); ``StaleRead`` makes the caller run the transaction again.
    """
    found = tx.run(q("current_by_ids"), ns=ns, ids=list(dict.fromkeys(ids)), open=OPEN).single(strict=True)
    if found["unsettled"]:
        raise StaleRead(f"{len(found['unsettled'])} edges without exactly one current version")
    return {fields[0]: Version(*fields) for fields in found["v"]}


def rivals(tx: neo4j.ManagedTransaction, ns: str, edges: list[NewEdge]) -> tuple[list[Version], set]:
    """Stored current versions that new functional edges may cut or be cut by.

    Those are the versions of the same subject and relation that overlap a new
    edge.  Each (subject, functional relation) pair has a Frontier: the latest
    valid_from among its current versions and, while that version is the only
    one reaching past that time, its edge id.  If the Frontier has an id and is
    no later than the pair's earliest new edge, every other current version of
    the pair ends before the new edges start, so the id's version is the only
    possible rival: one id lookup per pair, however long the history.  Otherwise
    (no Frontier yet, no id, or a new edge earlier than the Frontier) all the
    pair's current versions are read.  Locking the Frontiers first makes
    concurrent writers of one subject take turns.  Returns the rivals and the
    pairs read in full.
    """
    starts: dict[tuple[str, str], int] = {}
    for edge in edges:
        pair = (edge.src, edge.relation)
        starts[pair] = min(starts.get(pair, edge.valid_at), edge.valid_at)
    pairs = [{"src": src, "relation": relation} for src, relation in sorted(starts)]
    latest = {}
    for r in rows(tx, q("lock_frontiers"), ns=ns, pairs=pairs, turn=secrets.token_hex(8)):
        if r["edge_id"] is not None and r["valid_from"] <= starts[(r["src"], r["relation"])]:
            latest[(r["src"], r["relation"])] = r["edge_id"]
    scan = set(starts) - set(latest)
    found: list[Version] = []
    if scan:
        for props in rows(tx, q("current_by_src_relation"), ns=ns, open=OPEN,
                          srcs=sorted({s for s, _ in scan}), relations=sorted({r for _, r in scan})):
            version = Version.from_props(props["v"])
            if (version.src, version.relation) in scan:
                found.append(version)
    if latest:
        heads = current_versions(tx, ns, sorted(set(latest.values())))
        for pair, edge_id in latest.items():
            head = heads.get(edge_id)
            if head is not None and starts[pair] < head.valid_to:
                found.append(head)
    return found, scan


def raise_frontiers(tx: neo4j.ManagedTransaction, ns: str, plan: Plan, pairs: set, scanned: set) -> None:
    """Move each written pair's Frontier to its latest current version, keeping the id only if it is safe.

    ``plan.current`` holds every current version of a scanned pair.  Of another
    pair it holds the new versions and, if it reaches them, the Frontier's own
    version; every other one ends by the old Frontier (the invariant this keeps),
    so checking the known ones is enough.  A Frontier is never moved back on
    partial knowledge: a pair not scanned is written only when it reaches the
    latest start seen.
    """
    known: dict[tuple[str, str], list[Version]] = defaultdict(list)
    for version in plan.current.values():
        if version is not None and (version.src, version.relation) in pairs:
            known[(version.src, version.relation)].append(version)
    updates = []
    for pair, versions in sorted(known.items()):
        valid_from = max(v.valid_from for v in versions)
        head = max((v for v in versions if v.valid_from == valid_from), key=lambda v: v.valid_to)
        alone = all(v is head or v.valid_to <= valid_from for v in versions)
        updates.append({"src": pair[0], "relation": pair[1], "valid_from": valid_from,
                        "edge_id": head.edge_id if alone else None, "exact": pair in scanned})
    if updates:
        tx.run(q("raise_frontiers"), ns=ns, pairs=updates).consume()


def write_plan(tx: neo4j.ManagedTransaction, ns: str, plan: Plan) -> None:
    """Write a plan in at most two statements: each closed stored version with its successors
    (``supersede_versions``: no endpoint lookups), then the versions of new edges."""
    successors: dict[str, list] = defaultdict(list)
    fresh = BulkRows()
    for version in plan.created:
        (successors[version.edge_id] if version.edge_id in plan.closed else fresh).append(version.row)
    if plan.closed:
        changes = {edge_id: [plan.closed[edge_id], key, successors[edge_id]]
                   for edge_id, key in plan.closed_keys().items()}
        if not all(successors[edge_id] for edge_id in changes):  # Plan closes a version only to replace it
            raise GraphError("a closed version without a successor")
        done = tx.run(q("supersede_versions"), ns=ns, ids=list(changes), changes=BulkMap(changes),
                      open=OPEN).single()
        if done["closed"] != len(changes):  # the world moved under us: let the driver retry
            raise StaleRead(f"supersede_versions closed {done['closed']} of {len(changes)}")
        expected = sum(len(rows) for rows in successors.values())
        if done["created"] != expected:  # never commit a partial write
            raise GraphError(f"supersede_versions wrote {done['created']} of {expected} versions")
    if fresh:
        created = tx.run(q("create_versions"), ns=ns, rows=fresh).single()["created"]
        if created != len(fresh):  # never commit a partial write
            raise GraphError(f"create_versions wrote {created} of {len(fresh)} versions")
