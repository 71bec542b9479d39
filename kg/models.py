"""Request bodies of the graph verbs, validated at the boundary (pydantic).

Times arrive as integer ms or ISO-8601 strings and leave here as integer ms.
Every error is converted to ``InvalidInput`` naming the dotted field path.
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import Annotated, Any

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt, ValidationError,
                      WithJsonSchema, field_validator)

from kg.errors import InvalidInput
from kg.limits import (FIRST_TIME, LAST_TIME, MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTES_DEPTH, MAX_ID_CHARS,
                       MAX_CONTRADICTS, MAX_HOPS, MAX_INVALIDATIONS, MAX_NAMESPACE_CHARS, MAX_NEIGHBOURHOOD_EDGES,
                       MAX_NEIGHBOURHOODS, MAX_QUESTIONS, NEIGHBOURHOOD_EDGES, deeper_than, may_nest_deeper,
                       name_problem)
from kg.temporal import Contradiction, Cut, NewEdge, canonical_json
from kg.timeparse import MAX_MS, MIN_MS, to_ms

MAX_ID = MAX_ID_CHARS  # the name earlier releases exported
DEFAULT_NAMESPACE = "default"
DEFAULT_RELATION = "related_to"


def _ms(value: Any) -> Any:
    if type(value) is int and MIN_MS <= value <= MAX_MS:
        return value  # already epoch ms, as bulk sources give them: what to_ms would return
    if value is None:
        return None
    try:
        return to_ms(value, "time")
    except InvalidInput as exc:  # pydantic reports ValueErrors with the field's path
        raise ValueError(exc.message) from None


def _stated_ms(value: Any) -> Any:
    """A time a fact is stated with: strictly inside the 64-bit range, whose top is the open end."""
    value = _ms(value)
    if value is not None and not FIRST_TIME <= value <= LAST_TIME:
        raise ValueError("must be before the open end 9223372036854775807 and after -9223372036854775807")
    return value


def _name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _attributes_json(value: Any) -> str:
    """A JSON object of attributes as canonical JSON text, checked and encoded once.

    A graph property cannot hold a map, so the store keeps the text; encoding it
    here, once, matters in bulk ingest (it was a tenth of the validation work).
    """
    if not isinstance(value, dict) or not all(map(isinstance, value, repeat(str))):
        raise ValueError("must be a JSON object")
    if not value:
        return "{}"
    too_deep = f"is nested deeper than {MAX_ATTRIBUTES_DEPTH} levels"
    try:
        text = canonical_json(value)
    except RecursionError:
        raise ValueError(too_deep) from None
    except (TypeError, ValueError):
        raise ValueError("must be a JSON object of finite values") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate: named, not echoed
        raise ValueError("must be valid Unicode text (holds a lone surrogate)") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    if may_nest_deeper(text) and deeper_than(value, MAX_ATTRIBUTES_DEPTH):
        raise ValueError(too_deep)
    return text


Ms = Annotated[int, BeforeValidator(_ms)]
StatedMs = Annotated[int, BeforeValidator(_stated_ms)]  # a time written into history
Name = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_name)]
Namespace = Annotated[str, Field(min_length=1, max_length=MAX_NAMESPACE_CHARS), AfterValidator(_name)]
AttributesJson = Annotated[str, BeforeValidator(_attributes_json), WithJsonSchema({"type": "object"})]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    namespace: Namespace = DEFAULT_NAMESPACE


class EdgeFields(BaseModel):
    """An edge as stated by a caller."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    id: Name
    src: Name
    dst: Name
    relation: Name = DEFAULT_RELATION
    weight: StrictFloat | StrictInt = 1.0
    attributes: AttributesJson = Field("{}", json_schema_extra={"default": {}})  # an object in, its text kept
    valid_at: StatedMs
    invalid_at: StatedMs | None = None
    created_at: StatedMs

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        try:  # an integer beyond float's range (10**400) overflows here, not in the store
            value = float(value)
        except OverflowError:
            raise ValueError("must be a finite number (at most about 1.8e308 in magnitude)") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def to_new_edge(self, default_created_at: int | None = None) -> NewEdge:
        created_at = self.created_at if self.created_at is not None else default_created_at
        if created_at is None:
            raise InvalidInput("created_at", "is required")
        if self.invalid_at is not None and self.invalid_at <= self.valid_at:
            raise InvalidInput("invalid_at", "must be later than valid_at (a fact holds during "
                                             "[valid_at, invalid_at), which must not be empty)")
        return NewEdge(
            id=self.id, src=self.src, dst=self.dst, relation=self.relation,
            weight=float(self.weight),
            attributes=self.attributes,
            valid_at=self.valid_at, invalid_at=self.invalid_at, created_at=created_at,
        )


class InsertEdge(EdgeFields):
    namespace: Namespace = DEFAULT_NAMESPACE


class GetEdge(Body):
    edge_id: Name


class History(GetEdge):
    pass


class Question(BaseModel):
    """One ``query_at`` question (a ``query_at`` call is one, in a namespace; ``query_at_many`` a list)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    src: Name
    t: Ms
    known_at: Ms | None = None


class QueryAt(Question, Body):
    pass


class Invalidation(BaseModel):
    """One ``invalidate_edge`` (the call itself, in a namespace; ``invalidate_many`` a list)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    edge_id: Name
    invalid_at: StatedMs
    expired_at: StatedMs


class InvalidateEdge(Invalidation, Body):
    pass


class QueryAtMany(Body):
    questions: Annotated[list[Question], Field(min_length=1, max_length=MAX_QUESTIONS)]


Hops = Annotated[int, Field(ge=1, le=MAX_HOPS)]
MaxEdges = Annotated[int, Field(ge=1, le=MAX_NEIGHBOURHOOD_EDGES)]


class Walk(BaseModel):
    """One walk (a ``neighbourhood`` call is one, in a namespace; ``neighbourhood_many`` a list)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    src: Name
    hops: Hops = 1
    t: Ms
    known_at: Ms | None = None


class Neighbourhood(Walk, Body):
    max_edges: MaxEdges = NEIGHBOURHOOD_EDGES


class NeighbourhoodMany(Body):
    questions: Annotated[list[Walk], Field(min_length=1, max_length=MAX_NEIGHBOURHOODS)]
    max_edges: MaxEdges = NEIGHBOURHOOD_EDGES


class InvalidateMany(Body):
    invalidations: Annotated[list[Invalidation], Field(min_length=1, max_length=MAX_INVALIDATIONS)]


class StatedEdge(EdgeFields):
    """An edge whose ``created_at`` may be left to the service (contradict, ingest)."""

    created_at: StatedMs | None = None


Contradicts = Annotated[list[Name], Field(max_length=MAX_CONTRADICTS)]


class Contradict(Body):
    new_edge: StatedEdge
    contradicts: Contradicts
    now_ms: StatedMs


class IngestedEdge(StatedEdge):
    """An edge record of ``kg ingest`` (or the ``ingest`` verb): an edge, and the stored edges it
    contradicts (each ended at its valid_at, stamped at its created_at, as ``contradict`` does)."""

    contradicts: Contradicts = []

    def to_change(self, default_created_at: int) -> NewEdge | Contradiction:
        edge = self.to_new_edge(default_created_at=default_created_at)
        return Contradiction(edge, tuple(self.contradicts)) if self.contradicts else edge


class StatedInvalidation(BaseModel):
    """What an invalidation record of ``kg ingest`` holds; ``expired_at`` defaults to the ingest's
    system time, as an edge's ``created_at`` does."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    edge_id: Name
    invalid_at: StatedMs
    expired_at: StatedMs | None = None


class InvalidationRecord(BaseModel):
    """An invalidation record of ``kg ingest``: ``{"invalidate": {"edge_id": ..., "invalid_at": ...}}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    invalidate: StatedInvalidation

    def to_change(self, default_created_at: int) -> Cut:
        stated = self.invalidate
        expired_at = default_created_at if stated.expired_at is None else stated.expired_at
        return Cut(stated.edge_id, stated.invalid_at, expired_at)


def change_from_record(record: Any, default_created_at: int) -> NewEdge | Contradiction | Cut:
    """One ingest record as a batch change: an invalidation if it has ``invalidate``, else an edge."""
    if isinstance(record, dict) and "invalidate" in record:
        return parse(InvalidationRecord, record).to_change(default_created_at)
    return parse(IngestedEdge, record).to_change(default_created_at)


class Ingest(Body):
    """Bulk insert of edges given inline (files go through ``kg ingest``)."""

    edges: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=50_000)]
    created_at: StatedMs | None = None


class Empty(Body):
    pass


def parse(model: type[BaseModel], body: Any, prefix: str = "") -> Any:
    """Validate ``body`` as ``model``; raise InvalidInput naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidInput(prefix.rstrip(".") or "body", "must be a JSON object")
    try:  # model_validate without its wrapper, which costs a tenth of validating an edge
        return model.__pydantic_validator__.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "body"
        kind = first["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field"
        else:
            ctx = first.get("ctx", {}).get("error")
            message = str(ctx) if ctx is not None else first["msg"]
            if isinstance(ctx, InvalidInput):
                message = ctx.message
        raise InvalidInput(prefix + path, message) from None
