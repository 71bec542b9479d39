"""The bi-temporal rules, in one place and free of IO.

An edge is a chain of versions.  A version holds a valid interval
``[valid_from, valid_to)`` (when the fact held in the world) and a system
interval ``[sys_from, sys_to)`` (when the service believed that version).
History is append-only: a change closes the current version's system interval
and starts a new version; nothing is deleted.  See DESIGN.md, "Bi-temporal
semantics".  ``Plan`` collects the effect of a sequence of operations on the
versions it was given, so the store can write them in one transaction.

>>> plan = Plan({})
>>> plan.insert(NewEdge("e1", "alice", "acme", "works_at", 1.0, "{}", 10, None, 100))
'inserted'
>>> plan.invalidate("e1", invalid_at=50, expired_at=200)
True
>>> [(v.version, v.valid_to, v.sys_from, v.sys_to) for v in plan.created]
[(1, 9223372036854775807, 100, 200), (2, 50, 200, 9223372036854775807)]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kg.errors import Conflict, InvalidInput, NotFound
from kg.interval_index import OPEN, OPEN_KEY, time_key
from kg.limits import read_attributes

# Canonical JSON: sorted keys, no spaces, unicode kept, NaN refused.  Built once:
# json.dumps with options builds a new encoder on every call, which showed in ingest profiles.
_canonical = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))
_json_string = json.encoder.encode_basestring  # the string escaper canonical_json uses (ensure_ascii off)
# ``encode`` still makes a C encoder per call (a third of its time on ingest's attributes).  This
# one is made once, with the same options but no circular-reference check (its state is per call).
_c_make_encoder = json.encoder.c_make_encoder  # None without the C accelerator (not CPython)
_encode_unchecked = None if _c_make_encoder is None else _c_make_encoder(
    None, _canonical.default, _json_string, None, ":", ",", True, False, False)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text; raises TypeError / ValueError as ``json`` does."""
    if _encode_unchecked is None:
        return _canonical.encode(value)
    try:
        return "".join(_encode_unchecked(value, 0))
    except RecursionError:  # a cycle, or deep nesting: the checked encoder gives json's own error
        return _canonical.encode(value)


def _cache() -> Any:
    """A slot for a value computed on first use (not part of the value: no init, repr or eq)."""
    return field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class NewEdge:
    """What a caller asks to insert, already validated and in ms.

    A value, built like ``Version`` (not frozen, slots) and for the same reasons:
    ingest builds one per edge.  Nothing hashes it or assigns to its fields.
    """

    id: str
    src: str
    dst: str
    relation: str
    weight: float
    attributes: str  # canonical JSON text (a graph property cannot hold a map)
    valid_at: int
    invalid_at: int | None
    created_at: int
    _content_hash: str | None = _cache()
    _first_version: Version | None = _cache()

    @property
    def content_hash(self) -> str:
        """Identity of the stated fact; the system stamp ``created_at`` is not content.

        Cached: bulk ingest computes it in its validation thread, outside the transaction.
        """
        if self._content_hash is None:
            self._content_hash = hashlib.sha256(self._content_json().encode()).hexdigest()[:32]
        return self._content_hash

    def _content_json(self) -> str:
        """``canonical_json([src, dst, relation, weight, attributes, valid_at, invalid_at])``,
        spelt out with the same string escaper: the same text in half the time (a test
        keeps the two equal; stored hashes depend on it)."""
        s = _json_string
        invalid_at = "null" if self.invalid_at is None else self.invalid_at
        return (f"[{s(self.src)},{s(self.dst)},{s(self.relation)},{self.weight!r},"
                f"{s(self.attributes)},{self.valid_at},{invalid_at}]")

    @property
    def first_version(self) -> Version:
        """The version that inserting this edge as a new id stores (before any rival cuts it).

        Cached: bulk ingest builds it, and its row, in its validation thread.
        """
        if self._first_version is None:
            self._first_version = Version(
                edge_id=self.id, version=1, src=self.src, dst=self.dst, relation=self.relation,
                weight=self.weight, attributes=self.attributes, valid_from=self.valid_at,
                valid_to=OPEN if self.invalid_at is None else self.invalid_at,
                sys_from=self.created_at, sys_to=OPEN, created_at=self.created_at,
                content_hash=self.content_hash,
            )
        return self._first_version


ROW_FIELDS = ("edge_id", "version", "src", "dst", "relation", "weight", "attributes", "valid_from",
              "valid_to", "sys_from", "sys_to", "created_at", "invalidated_by", "content_hash", "tkey")


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A batch change: insert ``edge`` and end each listed edge at its valid_at (``Plan.contradict``)."""

    edge: NewEdge
    contradicts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cut:
    """A batch change: an explicit invalidation (``Plan.invalidate``)."""

    edge_id: str
    invalid_at: int
    expired_at: int


Change = NewEdge | Contradiction | Cut  # what one item of a batch asks


def edge_of(change: Change) -> NewEdge | None:
    """The new edge a batch change inserts (None for a ``Cut``)."""
    return change.edge if isinstance(change, Contradiction) else None if isinstance(change, Cut) else change


@dataclass(slots=True)
class Version:
    """One stored version of an edge (the properties of one FACT relationship).

    A value: changes make a new one (``dataclasses.replace``), nothing assigns to
    a field.  Not declared frozen only because a frozen dataclass is built four
    times slower (3.1 against 0.8 µs), and ingest and reads build one per fact.
    Slots, no ``__dict__``: one object less per fact for the garbage collector to
    walk; its full passes took about a quarter of bulk ingest's validation thread.
    """

    edge_id: str
    version: int
    src: str
    dst: str
    relation: str
    weight: float
    attributes: str
    valid_from: int
    valid_to: int
    sys_from: int
    sys_to: int
    created_at: int
    content_hash: str
    invalidated_by: str | None = None
    _row: list | None = _cache()

    @property
    def tkey(self) -> int:
        """Its interval index key (see kg.interval_index)."""
        return time_key(self.valid_from, self.valid_to, self.sys_from, self.sys_to)

    @property
    def is_current(self) -> bool:
        return self.sys_to == OPEN

    @property
    def row(self) -> list:
        """Its FACT relationship's properties as a list in ``ROW_FIELDS`` order.

        A list, not a map: 2,000 rows of 15 named fields cost the Bolt encoding and
        the server noticeably more (cypher/edges/create_versions.cypher reads it by
        position).  Cached: bulk ingest builds it in its validation thread.
        """
        if self._row is None:
            self._row = [self.edge_id, self.version, self.src, self.dst, self.relation, self.weight,
                         self.attributes, self.valid_from, self.valid_to, self.sys_from, self.sys_to,
                         self.created_at, self.invalidated_by, self.content_hash, self.tkey]
        return self._row

    @classmethod
    def from_props(cls, props: dict) -> "Version":
        return cls(**{k: props.get(k) for k in _VERSION_FIELDS})

    def flat(self, namespace: str) -> dict:
        """The seed-compatible flat view of the edge as this version states it."""
        return {
            "id": self.edge_id,
            "src": self.src,
            "dst": self.dst,
            "relation": self.relation,
            "weight": self.weight,
            "attributes": read_attributes(self.attributes),
            "namespace": namespace,
            "valid_at": self.valid_from,
            "invalid_at": None if self.valid_to == OPEN else self.valid_to,
            "created_at": self.created_at,
            "expired_at": self.sys_from if self.version > 1 else None,
            "version": self.version,
            "invalidated_by": self.invalidated_by,
        }


_VERSION_FIELDS = tuple(f.name for f in fields(Version) if f.init)  # what from_props reads


def overlaps(a_from: int, a_to: int, b_from: int, b_to: int) -> bool:
    """Half-open intervals share an instant (empty intervals share none)."""
    return a_from < b_to and b_from < a_to and a_from < a_to and b_from < b_to


@dataclass
class Plan:
    """The effect of operations on known current versions, to be written at once.

    ``current`` maps edge id -> its current stored version (``None`` if the id is
    known not to exist).  After the operations, ``created`` holds new versions
    (with final stamps) and ``closed`` maps stored edge ids -> the system time
    their stored current version ends.

    ``sealed_through`` (``KG_SEALED_THROUGH``): system history up to and including
    that time is sealed.  A change stamped at or before it (``created_at``,
    ``expired_at``) is refused, so every version written from then on starts, and
    every version closed from then on ends, after it.  Hence the answer to a
    question with ``known_at <= sealed_through`` never changes: the versions it
    sees have ``sys_from <= known_at``, which no new version has, and
    ``known_at < sys_to``, which a close stamped later than ``known_at`` keeps true.
    Re-inserting an identical edge writes nothing and is still answered.
    """

    current: dict[str, Version | None]
    functional: frozenset[str] = frozenset()
    sealed_through: int | None = None
    created: list[Version] = field(default_factory=list)
    closed: dict[str, int] = field(default_factory=dict)
    _stored: dict[str, Version] = field(default_factory=dict, init=False)
    _new_index: dict[str, int] = field(default_factory=dict, init=False)
    _by_subject: dict[tuple[str, str], set[str]] = field(default_factory=dict, init=False)  # functional only

    def __post_init__(self) -> None:
        self._stored = {k: v for k, v in self.current.items() if v is not None}
        for version in self._stored.values():
            if version.relation in self.functional:
                self._by_subject.setdefault((version.src, version.relation), set()).add(version.edge_id)

    # -- reads of the planned state --------------------------------------
    def head(self, edge_id: str) -> Version | None:
        return self.current.get(edge_id)

    def current_of(self, src: str, relation: str) -> list[Version]:
        """Current versions of a functional relation's subject (only those are indexed)."""
        ids = self._by_subject.get((src, relation), ())
        return [self.current[i] for i in sorted(ids)]

    # -- operations --------------------------------------------------------
    def insert(self, edge: NewEdge) -> str:
        """'inserted' or 'unchanged'; raises Conflict for the same id with other content."""
        if edge.invalid_at is not None and edge.invalid_at <= edge.valid_at:
            raise InvalidInput("invalid_at", "must be later than valid_at")
        digest = edge.content_hash
        existing = self.head(edge.id)
        if existing is not None:
            if existing.content_hash == digest:
                return "unchanged"
            raise Conflict("id", f"edge {edge.id!r} exists with different content")
        self._check_unsealed(edge.created_at, "created_at")
        version = edge.first_version
        rivals = []
        if edge.relation in self.functional:
            rivals = [v for v in self.current_of(edge.src, edge.relation)
                      if v.edge_id != edge.id
                      and overlaps(v.valid_from, v.valid_to, version.valid_from, version.valid_to)]
        for rival in rivals:  # check first: a failed insert leaves the plan untouched
            if rival.valid_from <= version.valid_from and edge.created_at < rival.sys_from:
                raise InvalidInput("created_at", "is earlier than the current version of an edge it contradicts")
        self._put(version)
        # A functional relation holds one object per subject at a time: the new fact
        # ends what started before it, and is itself cut once, by the first fact after it.
        later = []
        for rival in rivals:
            if rival.valid_from <= version.valid_from:
                self.invalidate(rival.edge_id, version.valid_from, edge.created_at, by=edge.id)
            else:
                later.append(rival)
        if later:
            first = min(later, key=lambda v: (v.valid_from, v.edge_id))
            self.invalidate(edge.id, first.valid_from, edge.created_at, by=first.edge_id)
        return "inserted"

    def invalidate(self, edge_id: str, invalid_at: int, expired_at: int,
                   by: str | None = None) -> bool:
        """End the validity of an edge at ``invalid_at``; False if it already ends by then."""
        head = self.head(edge_id)
        if head is None:
            raise NotFound("edge_id", f"no edge {edge_id!r}")
        if invalid_at < head.valid_from:
            raise InvalidInput("invalid_at", "must not be earlier than the edge's valid_at")
        if head.valid_to <= invalid_at:
            return False  # earliest invalidation wins; repeating it is a no-op
        if expired_at < head.sys_from:
            raise InvalidInput("expired_at", "must not be earlier than the current version's start")
        self._check_unsealed(expired_at, "expired_at")
        self._close(head, expired_at)
        self._put(replace(head, version=head.version + 1, valid_to=invalid_at,
                          sys_from=expired_at, sys_to=OPEN, invalidated_by=by))
        return True

    def contradict(self, edge: NewEdge, contradicts: list[str], now_ms: int) -> str:
        """Invalidate every listed edge at the new edge's valid_at, then insert it."""
        for old_id in contradicts:
            if old_id == edge.id:
                raise InvalidInput("contradicts", "an edge cannot contradict itself")
            self.invalidate(old_id, edge.valid_at, now_ms, by=edge.id)
        return self.insert(edge)

    # -- bookkeeping -------------------------------------------------------
    def _check_unsealed(self, stamp: int, name: str) -> None:
        if self.sealed_through is not None and stamp <= self.sealed_through:
            raise InvalidInput(name, "is at or before the sealed system history (KG_SEALED_THROUGH)")

    def _put(self, version: Version) -> None:
        self.current[version.edge_id] = version
        if version.relation in self.functional:  # only functional relations look up rivals
            self._by_subject.setdefault((version.src, version.relation), set()).add(version.edge_id)
        self._new_index[version.edge_id] = len(self.created)
        self.created.append(version)

    def _close(self, head: Version, at: int) -> None:
        index = self._new_index.get(head.edge_id)
        if index is not None and self.created[index] is head:
            self.created[index] = replace(head, sys_to=at)  # planned, not stored yet
        else:
            self.closed[head.edge_id] = at

    def closed_keys(self) -> dict[str, int]:
        """The index key each closed stored version moves to."""
        return {i: replace(self._stored[i], sys_to=at).tkey for i, at in self.closed.items()}


__all__ = ["NewEdge", "Contradiction", "Cut", "Change", "edge_of", "Version", "ROW_FIELDS", "Plan", "OPEN", "OPEN_KEY", "overlaps", "canonical_json"]
