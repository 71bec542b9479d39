"""The request bodies of the learning verbs: the strict models of :mod:`workers.bodies` plus an
optional ``namespace`` and, for updates, an optional ``event_id`` (a retried request with the same
id takes effect once)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kg import models as m
from kg.models import DEFAULT_NAMESPACE, Ms, Name
from learn import limits
from workers import bodies as ls
from learn.limits import MAX_BATCH, TRAIN_MAX

Namespace = m.Namespace  # the graph verbs' rule: not blank, no control characters
EventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]


class _Update(BaseModel):
    namespace: Namespace = DEFAULT_NAMESPACE
    event_id: EventId | None = None


class _Read(BaseModel):
    namespace: Namespace = DEFAULT_NAMESPACE


class InitInstant(ls.InitInstant, _Update):
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


class Feedback(ls.Feedback, _Update):
    pass


class FeedbackItem(ls.Feedback):
    """One event of ``feedback_batch``: a ``feedback`` body with its own optional ``event_id``."""

    event_id: EventId | None = None


class FeedbackBatch(_Read):
    """Many ``feedback`` events for one namespace, applied in the given order."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    events: Annotated[list[FeedbackItem], Field(min_length=1, max_length=MAX_BATCH)]

    @model_validator(mode="after")
    def _values_within_budget(self) -> "FeedbackBatch":
        if sum(len(ev.embedding) for ev in self.events) > limits.BATCH_MAX_VALUES:
            raise ls.field_error(type(self).__name__, "events",
                                f"must hold at most {limits.BATCH_MAX_VALUES:,} embedding values in all",
                                len(self.events))
        return self


class ResetAdapter(ls.Empty, _Update):
    pass


class ConsolidateAdapter(ls.ConsolidateAdapter, _Update):
    pass


class RecordLoss(ls.RecordLoss, _Update):
    pass


class Consolidate(ls.Consolidate, _Update):
    pass


class InitRouter(ls.InitRouter, _Update):
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


class RecordOutcome(ls.RecordOutcome, _Update):
    pass


class TrainRouter(_Update):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    epochs: Annotated[int, Field(ge=1, le=limits.MAX_EPOCHS)] = 1
    max_samples: Annotated[int, Field(ge=1, le=TRAIN_MAX)] = TRAIN_MAX


class InitAttention(ls.InitAttention, _Update):
    pass


class ApplyAdapter(ls.ApplyAdapter, _Read):
    pass


class Route(ls.Route, _Read):
    pass


class EwcPenalty(ls.EwcPenalty, _Read):
    pass


class Attend(_Read):
    """Either ``subgraph`` (+ ``now_ms``) in the body, or ``src`` + ``t`` to read it from the graph."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
    query: ls.Vector
    subgraph: ls.Subgraph | None = None
    now_ms: ls.Ms | None = None
    src: Name | None = None
    hops: Annotated[int, Field(ge=1, le=limits.MAX_HOPS)] = 1
    t: Ms | None = None
    known_at: Ms | None = None
    max_edges: Annotated[int, Field(ge=1, le=limits.MAX_EDGES)] | None = None  # default: graph_max_edges


class UpsertNode(_Read):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
    name: Name
    embedding: ls.Vector


class InitPatterns(ls.InitPatterns, _Update):
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


class RecordTrajectory(ls.Trajectory, _Update):
    pass


class TrajectoryItem(ls.Trajectory):
    """One trajectory of ``record_trajectories``, with its own optional ``event_id``."""

    event_id: EventId | None = None


class RecordTrajectories(_Read):
    """Many trajectories for one namespace, recorded in the given order."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    trajectories: Annotated[list[TrajectoryItem], Field(min_length=1, max_length=MAX_BATCH)]

    @model_validator(mode="after")
    def _values_within_budget(self) -> "RecordTrajectories":
        values = sum(len(t.embedding) + sum(len(s.embedding) for s in t.steps) for t in self.trajectories)
        if values > limits.BATCH_MAX_VALUES:
            raise ls.field_error(type(self).__name__, "trajectories",
                                f"must hold at most {limits.BATCH_MAX_VALUES:,} embedding values in all",
                                len(self.trajectories))
        return self


class ClusterPatterns(ls.Empty, _Update):
    pass


class FindPatterns(ls.FindPatterns, _Read):
    pass


class Poll(_Read):
    """The ticket names its state; ``namespace`` is accepted like on every verb."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    ticket: Annotated[str, Field(min_length=1, max_length=600)]
