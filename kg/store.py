"""The bi-temporal edge store over Bolt: reads and writes of FACT versions.

Each write is one managed transaction: read the current versions it acts on,
let ``kg.temporal.Plan`` apply the rules, write the result (``kg.store_writes``).
The driver may run a transaction function more than once, and that is safe
because it re-reads the world every time.  Reads run each statement auto-commit
(``kg.graph.AutoCommit``) and are re-run whole the same way.  All statements are
named files in ``cypher/``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

import neo4j

from kg.cypher import q
from kg.errors import Conflict, InvalidInput, NotFound
from kg.graph import Graph, StaleRead, rows
from kg.store_writes import current_versions, raise_frontiers, rivals, write_plan
from kg.interval_index import OPEN, as_of_keys, current_keys
from kg.limits import NEIGHBOURHOOD_EDGES
from kg.sealed import SealedHistory
from kg.temporal import Change, Contradiction, Cut, NewEdge, Plan, Version, edge_of
from kg.walk import walk

SCAN_LIMIT = 64  # reading this many versions whole costs about what ~40 keyed index seeks do
LARGE_SUBJECTS_KEPT = 100_000


@dataclass
class BatchResult:
    """What one batch of inserts did; ``rejected`` holds (edge id, reason)."""

    inserted: int = 0
    unchanged: int = 0
    invalidated: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: "BatchResult") -> None:
        self.inserted += other.inserted
        self.unchanged += other.unchanged
        self.invalidated += other.invalidated
        self.rejected.extend(other.rejected)


class _Replan(Exception):
    """A batch change failed after changing the plan: plan the batch again without it."""


def _change_id(change: Change) -> str:
    """The edge a batch change is named by in ``BatchResult.rejected``."""
    return change.edge_id if isinstance(change, Cut) else edge_of(change).id


class EdgeStore:
    """Bi-temporal edges of every namespace in one graph database."""

    def __init__(self, graph: Graph, functional: frozenset[str] | tuple[str, ...] = (),
                 scan_limit: int = SCAN_LIMIT, sealed_through: int | None = None) -> None:
        """``scan_limit``: subjects with fewer versions are read whole by ``query_at`` (0: never).
        ``sealed_through`` (``KG_SEALED_THROUGH``): changes stamped by then are refused, and
        questions with a ``known_at`` by then are answered from process memory once a subject's
        sealed history has been read (``kg.sealed``)."""
        self.graph = graph
        self.functional = frozenset(functional)
        self.scan_limit = scan_limit
        self.sealed_through = sealed_through
        self._sealed = None if sealed_through is None else SealedHistory(sealed_through)
        self._large_subjects: set[tuple[str, str]] = set()  # (ns, src) with scan_limit+ versions

    # -- writes ------------------------------------------------------------
    def insert_edge(self, ns: str, edge: NewEdge) -> dict:
        """Insert one edge; identical re-insert is a no-op, other content a Conflict."""
        def op(plan: Plan) -> str:
            return plan.insert(edge)

        status, plan = self._apply(ns, [edge.id], [edge], op)
        view = plan.head(edge.id).flat(ns)
        view["status"] = status
        return view

    def insert_many(self, ns: str, changes: list[Change], expect_new: bool = False) -> BatchResult:
        """Apply a batch in one transaction, in order: new edges, edges with the stored edges they
        contradict (``Contradiction``), explicit invalidations (``Cut``).  Each change follows the
        rule of its single verb (``insert_edge``, ``contradict`` stamped at the new edge's
        created_at, ``invalidate_edge``); a bad change is rejected alone, not the batch, and a
        rejected contradiction leaves the edges it lists as they were.

        ``expect_new`` (bulk ingest of fresh ids) skips reading the new edges' ids first (the ids
        a change refers to are always read): if one exists after all, the unique (ns, edge_id,
        version) constraint fails the transaction and it runs again with the read.
        """
        # contradictions that failed halfway, by index: the batch is planned again without them
        # (kept if the driver runs the transaction again: a later read does not bring one back)
        dropped: dict[int, str] = {}

        def op(plan: Plan) -> BatchResult:
            result = BatchResult()
            for index, change in enumerate(changes):
                if index in dropped:
                    result.rejected.append((_change_id(change), dropped[index]))
                    continue
                # each invalidation adds exactly one version; the stored versions it closes
                # (plan.closed) are not counted again: that counted a cut of an earlier batch twice
                before = len(plan.created)
                try:
                    if isinstance(change, Cut):
                        changed = plan.invalidate(change.edge_id, change.invalid_at, change.expired_at)
                        result.invalidated += changed
                        result.unchanged += not changed
                        continue
                    if isinstance(change, Contradiction):
                        status = plan.contradict(change.edge, list(change.contradicts), change.edge.created_at)
                    else:
                        status = plan.insert(change)
                except (Conflict, InvalidInput) as exc:  # NotFound too
                    if len(plan.created) != before:  # a contradiction that cut before its insert failed
                        dropped[index] = str(exc)
                        raise _Replan from None
                    result.rejected.append((_change_id(change), str(exc)))
                    continue
                if status == "unchanged":
                    result.unchanged += 1
                else:
                    result.inserted += 1
                    result.invalidated += len(plan.created) - before - 1
            return result

        inserts = [edge for edge in map(edge_of, changes) if edge is not None]
        referenced = [i for c in changes for i in (c.contradicts if isinstance(c, Contradiction)
                                                   else (c.edge_id,) if isinstance(c, Cut) else ())]
        result, _ = self._apply(ns, [e.id for e in inserts], inserts, op, read_ids=not expect_new,
                                referenced=referenced)
        return result

    def invalidate_edge(self, ns: str, edge_id: str, invalid_at: int, expired_at: int) -> dict:
        """Set invalidation stamps (earliest wins); returns the edge's flat view."""
        changed, plan = self._apply(
            ns, [edge_id], [], lambda plan: plan.invalidate(edge_id, invalid_at, expired_at))
        view = plan.head(edge_id).flat(ns)
        view["changed"] = changed
        return view

    def invalidate_many(self, ns: str, items: list[tuple[str, int, int]]) -> list[dict]:
        """``invalidate_edge`` for each (edge id, invalid_at, expired_at), in order, in one transaction.

        Each view is what ``invalidate_edge`` answers for that item after the ones before it.
        A bad item (unknown id, a time before the edge's) fails the whole call, naming its
        index (``invalidations.3.edge_id``), and nothing is written.
        """
        def op(plan: Plan) -> list[dict]:
            views = []
            for index, (edge_id, invalid_at, expired_at) in enumerate(items):
                try:
                    changed = plan.invalidate(edge_id, invalid_at, expired_at)
                except InvalidInput as exc:  # NotFound too, with its own type
                    raise type(exc)(f"invalidations.{index}.{exc.field}", exc.message) from None
                views.append(plan.head(edge_id).flat(ns) | {"changed": changed})
            return views

        views, _ = self._apply(ns, [edge_id for edge_id, _, _ in items], [], op)
        return views

    def contradict(self, ns: str, edge: NewEdge, contradicts: list[str], now_ms: int) -> dict:
        """Insert ``edge`` and invalidate every listed edge at its valid_at."""
        def op(plan: Plan) -> str:
            for old_id in contradicts:
                if plan.head(old_id) is None:
                    raise NotFound("contradicts", f"no edge {old_id!r}")
            return plan.contradict(edge, contradicts, now_ms)

        status, plan = self._apply(ns, [edge.id, *contradicts], [edge], op)
        return {
            "edge": plan.head(edge.id).flat(ns) | {"status": status},
            "invalidated": [plan.head(i).flat(ns) for i in dict.fromkeys(contradicts)],
        }

    def _apply(self, ns: str, ids: list[str], inserts: list[NewEdge], op: Callable[[Plan], object],
               read_ids: bool = True, referenced: list[str] = ()) -> tuple[object, Plan]:
        """Read what ``op`` acts on (``ids``, unless ``read_ids`` is false: then they are taken to
        be new; ``referenced`` ids always; the functional rivals of ``inserts``), let it plan,
        write the plan and return ``op``'s outcome with it.  ``op`` may raise ``_Replan`` to be
        run again on a fresh plan of the same reads."""
        functional = self.functional
        functional_inserts = [e for e in inserts if e.relation in functional]
        attempts = iter([read_ids])  # a re-run (constraint violation, transient error) always reads
        absence_checked = iter([False])

        def work(tx: neo4j.ManagedTransaction) -> tuple[object, Plan]:
            current: dict[str, Version | None] = {i: None for i in [*ids, *referenced]}
            wanted = [*ids, *referenced] if next(attempts, True) else list(referenced)
            if wanted:
                current.update(current_versions(tx, ns, wanted))
            found, scanned = rivals(tx, ns, functional_inserts) if functional_inserts else ([], set())
            for version in found:
                current.setdefault(version.edge_id, version)
            try:
                while True:
                    try:
                        plan = Plan(dict(current), functional, sealed_through=self.sealed_through)
                        outcome = op(plan)
                        break
                    except _Replan:
                        continue
            except NotFound:
                # ArcadeDB was seen to show no version at all of an edge that racing writers were
                # changing (a half-visible commit): an absence is read a second time before it is an answer.
                if not next(absence_checked, True):
                    raise StaleRead("edge not found while others write: read again") from None
                raise
            write_plan(tx, ns, plan)
            if functional_inserts:
                raise_frontiers(tx, ns, plan, {(e.src, e.relation) for e in functional_inserts}, scanned)
            return outcome, plan

        return self.graph.write(work)

    # -- reads -------------------------------------------------------------
    def get_edge(self, ns: str, edge_id: str) -> dict:
        found = self.graph.read(lambda tx: current_versions(tx, ns, [edge_id]))
        if edge_id not in found:
            raise NotFound("edge_id", f"no edge {edge_id!r}")
        return found[edge_id].flat(ns)

    def history(self, ns: str, edge_id: str) -> list[dict]:
        found = self.graph.read(lambda tx: rows(tx, q("history"), ns=ns, id=edge_id))
        if not found:
            raise NotFound("edge_id", f"no edge {edge_id!r}")
        return [_version_view(Version.from_props(r["v"])) for r in found]

    def query_at(self, ns: str, src: str, t: int, known_at: int | None = None) -> list[dict]:
        """Edges of ``src`` valid at ``t``: current belief, or as believed at ``known_at``.

        A subject with fewer than ``scan_limit`` versions is read whole, one
        index seek; a larger one by its time keys (``kg.interval_index``), ~40
        seeks for current belief and ~80 with ``known_at``, a cost that does not
        grow with its history.  Subjects found large are remembered, so a hub
        goes straight to its keys; versions are never deleted, so a subject
        once large stays large.  Either read gives the same answer.
        """
        subject = (ns, src)
        if self._sealed is not None and self._sealed.answers(known_at):
            kept = self._sealed_versions(ns, src)
            if kept is not None:
                return _views(ns, [v for v in kept if _holds(v, t, known_at)])
        if known_at is None:
            scan, keyed = q("scan_subject_current"), q("query_current")
        else:
            scan, keyed = q("scan_subject_known_at"), q("query_known_at")

        def read(tx: neo4j.ManagedTransaction) -> list[dict]:
            if self.scan_limit and subject not in self._large_subjects:
                small = tx.run(scan, ns=ns, src=src, t=t, open=OPEN, limit=self.scan_limit,
                               known_at=known_at).single(strict=True)
                if small["n"] < self.scan_limit:
                    return small["v"]
                self._remember_large(subject)
            keys = current_keys(t) if known_at is None else as_of_keys(t, known_at)
            return [r["v"] for r in rows(tx, keyed, ns=ns, src=src, t=t, open=OPEN, known_at=known_at, keys=keys)]

        return _views(ns, [Version.from_props(props) for props in self.graph.read(read)])

    def _sealed_versions(self, ns: str, src: str) -> list[Version] | None:
        """The subject's sealed history, kept or read now (one seek); None for a large subject."""
        subject = (ns, src)
        kept = self._sealed.get(subject)
        if kept is None and self.scan_limit and subject not in self._large_subjects:
            scanned = self.graph.read(lambda tx: tx.run(
                q("scan_subject_sealed"), ns=ns, src=src, through=self._sealed.through,
                limit=self.scan_limit).single(strict=True))
            if scanned["n"] < self.scan_limit:
                kept = [Version(*fields) for fields in scanned["v"]]
                self._sealed.put(subject, kept)
            else:
                self._remember_large(subject)
        return kept

    def query_at_many(self, ns: str, questions: list[tuple[str, int, int | None]]) -> list[list[dict]]:
        """``query_at`` for each (src, t, known_at), in one read; each answer is ``query_at``'s.

        The questions are read together (``_answers``).  A question about sealed history of a
        subject kept in process (``kg.sealed``) is answered from there.
        """
        kept: dict[int, list[Version]] = {}
        if self._sealed is not None:
            for k, (src, t, known_at) in enumerate(questions):
                versions = self._sealed.get((ns, src)) if self._sealed.answers(known_at) else None
                if versions is not None:
                    kept[k] = [v for v in versions if _holds(v, t, known_at)]
        rest = [question for k, question in enumerate(questions) if k not in kept]
        asked = iter(self.graph.read(lambda tx: self._answers(tx, ns, rest)) if rest else [])
        return [_views(ns, kept[k] if k in kept else next(asked)) for k in range(len(questions))]

    def neighbourhood(self, ns: str, src: str, hops: int, t: int, known_at: int | None = None,
                      max_edges: int = NEIGHBOURHOOD_EDGES) -> list[dict]:
        """Edges valid at ``t`` (believed now, or at ``known_at``) up to ``hops`` steps out of ``src``.

        Breadth first (``kg.walk``), in one read, each hop's whole frontier read as
        ``query_at_many`` reads its questions; a hop keeps the first edges by id that fit in
        ``max_edges``.  Rows hold ``src``, ``dst``, ``relation``, ``weight``, ``valid_from`` and
        ``edge_id`` (attention's subgraph).
        """
        return self.neighbourhood_many(ns, [(src, hops, t, known_at)], max_edges)[0]

    def neighbourhood_many(self, ns: str, questions: list[tuple[str, int, int, int | None]],
                           max_edges: int = NEIGHBOURHOOD_EDGES) -> list[list[dict]]:
        """``neighbourhood`` for each (src, hops, t, known_at), in order, in one read: the walks
        take their steps together, so each hop is one read of every walk's frontier, whatever
        the number of questions."""
        return self.graph.read(lambda tx: walk(questions, max_edges, lambda asked: self._answers(tx, ns, asked)))

    def _answers(self, tx: neo4j.ManagedTransaction, ns: str,
                 questions: list[tuple[str, int, int | None]]) -> list[list[Version]]:
        """The versions answering each (src, t, known_at), read together.

        Subjects not known to be large are read whole, all of them in one statement (a seek
        per subject) that returns the versions answering any of their questions, and each
        question is answered here from those by the rule the statements apply; a read that
        fills its limit names the subjects too large to read whole, which are remembered and
        asked by time keys, one statement per subject with the union of its questions' keys.
        """
        asked: dict[str, list[list]] = defaultdict(list)
        for src, t, known_at in questions:
            if (ns, src) not in self._large_subjects:
                asked[src].append([t, known_at])
        versions = self._scan_many(tx, ns, asked)
        large: dict[str, list[list]] = defaultdict(list)
        for src, t, known_at in questions:
            if src not in versions:
                large[src].append([t, known_at])
        for src, pairs in large.items():  # one statement per subject, by its questions' keys
            keys = sorted({k for t, known_at in pairs
                           for k in (current_keys(t) if known_at is None else as_of_keys(t, known_at))})
            versions[src] = [Version(*fields) for fields in tx.run(
                q("query_subject_many"), ns=ns, src=src, keys=keys, questions=pairs, open=OPEN).value("v")]
        return [[v for v in versions[src] if _holds(v, t, known_at)] for src, t, known_at in questions]

    def _scan_many(self, tx: neo4j.ManagedTransaction, ns: str, asked: dict[str, list[list]]) -> dict[str, list[Version]]:
        """For each subject of ``asked`` small enough to read whole (``scan_limit``), its versions
        that answer any of its questions; subjects found large are remembered and left out."""
        whole: dict[str, list[Version]] = {}
        pending = sorted(asked) if self.scan_limit else []
        while pending:
            cap = self.scan_limit * len(pending)
            scanned = tx.run(q("scan_subjects_many"), ns=ns, srcs=pending, asked={s: asked[s] for s in pending},
                             open=OPEN, limit=cap).single(strict=True)
            if scanned["n"] < cap:  # nothing was cut off: every pending subject was read whole
                whole.update((s, []) for s in pending)
                for fields in scanned["v"]:
                    whole[fields[2]].append(Version(*fields))
                break
            large = {s for s, count in Counter(scanned["srcs"]).items() if count >= self.scan_limit}
            for subject in large:  # a full read holds at least one
                self._remember_large((ns, subject))
            pending = [s for s in pending if s not in large]
        return whole

    def _remember_large(self, subject: tuple[str, str]) -> None:
        if len(self._large_subjects) >= LARGE_SUBJECTS_KEPT:
            self._large_subjects.clear()  # a hint only: forgetting costs one more scan
        self._large_subjects.add(subject)


def _views(ns: str, versions: list[Version]) -> list[dict]:
    """``query_at``'s answer: the versions' flat views by valid_at, then id."""
    return sorted((v.flat(ns) for v in versions), key=lambda v: (v["valid_at"], v["id"]))


def _holds(version: Version, t: int, known_at: int | None) -> bool:
    """Whether a version answers ``query_at(src, t, known_at)``: the filter of
    cypher/edges/query_current.cypher and query_known_at.cypher."""
    if not version.valid_from <= t < version.valid_to:
        return False
    if known_at is None:
        return version.sys_to == OPEN
    return version.sys_from <= known_at < version.sys_to


def _version_view(version: Version) -> dict:
    """One version with both intervals, open ends as null."""
    return {
        "id": version.edge_id,
        "version": version.version,
        "src": version.src,
        "dst": version.dst,
        "relation": version.relation,
        "valid_from": version.valid_from,
        "valid_to": None if version.valid_to == OPEN else version.valid_to,
        "sys_from": version.sys_from,
        "sys_to": None if version.sys_to == OPEN else version.sys_to,
        "invalidated_by": version.invalidated_by,
    }
