"""The learning verbs of the dispatch surface, registered on ``kg.dispatch``.

Bodies are learn's strict models (:mod:`learn.schemas`) plus an optional ``namespace`` and, for
updates, an optional ``event_id`` (a retried request with the same id takes effect once).

Updates run in the workers (see :mod:`workers.service`): ``init_instant``, ``feedback``,
``reset_adapter``, ``record_loss``, ``consolidate``, ``init_router``, ``record_outcome``,
``train_router``, ``init_attention``. By default the call answers with the applied result; with
``"async": true`` it answers at once with a ticket for ``poll``.

Reads run here, on the current blob: ``apply_adapter``, ``route``, ``ewc_penalty``, ``attend``.
``upsert_node`` stores a node embedding in the graph for ``attend``. ``health`` gains the state of
each core, the update counts, Fisher keys, boundaries, queue depth and live workers.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kg import models as m
from kg.dispatch import HEALTH_HOOKS, Session, register
from kg.errors import InvalidInput, KgError
from kg.models import DEFAULT_NAMESPACE, Ms, Name
from learn import LearnInputError
from learn import limits
from learn import schemas as ls
from learn.limits import MAX_BATCH, TRAIN_MAX
from workers.errors import NotInitialised, StateCorrupt
from workers.events import VECTOR_KEYS
from workers.service import Current, Learning, redis_errors
from workers.store_keys import KINDS

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


class Poll(_Read):
    """The ticket names its state; ``namespace`` is accepted like on every verb."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    ticket: Annotated[str, Field(min_length=1, max_length=600)]



# -- helpers -----------------------------------------------------------------------------------


def learning(session: Session) -> Learning:
    ext = session.extensions.get("learn")
    if ext is None:
        ext = session.extensions.setdefault("learn", Learning(session.settings))
    return ext


@contextlib.contextmanager
def learn_errors() -> Iterator[None]:
    """A core's LearnInputError as InvalidInput naming the same field."""
    try:
        yield
    except LearnInputError as exc:
        raise InvalidInput(exc.field, exc.reason) from None


def _dim(values: list[float] | None, field: str, dim: int) -> None:
    if values is not None and len(values) != dim:
        raise InvalidInput(field, f"expected {dim} values, got {len(values)}")


def _target(core: Any, name: str, field: str) -> None:
    if name not in core.targets:
        raise InvalidInput(field, "unknown target")


def _needs(core: Any, kind: str, init: str) -> Any:
    if core is None:
        raise NotInitialised("namespace", f"has no {kind} state; call {init} first")
    return core


def event_body(body: BaseModel) -> dict[str, Any]:
    """What an update queues: the body without namespace and event id (vectors kept as given,
    ``event_bytes`` packs them)."""
    data = body.model_dump(mode="json", exclude={"namespace", "event_id", *VECTOR_KEYS}, exclude_none=True)
    for key in VECTOR_KEYS:
        value = getattr(body, key, None)
        if value is not None:
            data[key] = value
    return data


# -- updates -----------------------------------------------------------------------------------


def _check_feedback(core: Any, body: Feedback) -> None:
    _needs(core, "instant", "init_instant")
    _dim(body.embedding, "embedding", core.in_dim)
    _target(core, body.model, "model")


def _check_reset(core: Any, body: ResetAdapter) -> None:
    _needs(core, "instant", "init_instant")


def _check_consolidate(core: Any, body: Consolidate) -> None:
    held = None if core is None else core.fisher(body.param_id)
    if held is not None and held.shape != (len(body.params),):
        raise InvalidInput("params", f"param_id holds {held.size} values, got {len(body.params)}")
    if core is not None:
        with learn_errors():
            core.check_room(body.param_id, len(body.params))


def _check_outcome(core: Any, body: RecordOutcome) -> None:
    _needs(core, "router", "init_router")
    _target(core, body.target, "target")
    _dim(body.embedding, "embedding", core.in_dim)
    if body.embedding is None and (body.estimated_tokens is not None or body.temperature is not None
                                   or body.top_p is not None):
        raise InvalidInput("embedding", "is required with estimated_tokens, temperature or top_p")


@dataclass(frozen=True)
class Update:
    """An update verb: its body model, its check against the current core, and whether the
    queue must refuse it if the core was re-initialised after the check."""

    model: type[BaseModel]
    check: Callable[[Any, Any], None] | None
    epoch_bound: bool


UPDATES: dict[str, Update] = {
    "init_instant": Update(InitInstant, None, False),
    "feedback": Update(Feedback, _check_feedback, True),
    "reset_adapter": Update(ResetAdapter, _check_reset, True),
    "record_loss": Update(RecordLoss, None, False),
    "consolidate": Update(Consolidate, _check_consolidate, False),
    "init_router": Update(InitRouter, None, False),
    "record_outcome": Update(RecordOutcome, _check_outcome, True),
    "init_attention": Update(InitAttention, None, False),
}


def queued_body(session: Session, verb: str, body: BaseModel) -> dict[str, Any]:
    data = event_body(body)
    if verb == "init_instant":
        data["lr_min"] = session.settings.workers.learn_lr_min  # a project setting, saved in the state
    return data


def _update_handler(verb: str) -> Callable[[Session, Any, bool], dict]:
    spec = UPDATES[verb]

    def handler(session: Session, body: Any, async_: bool) -> dict:
        check = None if spec.check is None else (lambda core: spec.check(core, body))
        return learning(session).submit(body.namespace, verb, queued_body(session, verb, body),
                                        event_id=body.event_id, wait=not async_, check=check,
                                        epoch_bound=spec.epoch_bound)

    handler.__name__ = f"_{verb}"
    return handler


for _verb, _spec in UPDATES.items():
    register(_verb, _spec.model, async_ok=True)(_update_handler(_verb))


def submit_many(session: Session, namespace: str, verb: str, bodies: list[dict]) -> list[dict]:
    """Queue many updates of one verb at once (one round trip), without waiting.

    Each body is validated and checked like a single request (errors name ``<index>.<field>``);
    nothing is queued unless all pass. Returns one ``{ticket, status, event_id}`` per body.
    """
    spec = UPDATES[verb]
    if len(bodies) > MAX_BATCH:
        raise InvalidInput("bodies", f"at most {MAX_BATCH:,} per call")
    models = [m.parse(spec.model, dict(b, namespace=namespace), prefix=f"{i}.") for i, b in enumerate(bodies)]
    items = [(model.event_id, queued_body(session, verb, model)) for model in models]
    return learning(session).submit_many(namespace, verb, items, check=_check_each(spec.check, models, ""),
                                         epoch_bound=spec.epoch_bound)


def _check_each(check: Callable[[Any, Any], None] | None, models: list, prefix: str) -> Callable[[Any], None]:
    """One check of every model against the core; an error names ``<prefix><index>.<field>``."""

    def run(core: Any) -> None:
        if check is not None:
            for i, model in enumerate(models):
                try:
                    check(core, model)
                except NotInitialised:
                    raise  # about the namespace, not the event
                except InvalidInput as exc:
                    raise InvalidInput(f"{prefix}{i}.{exc.field}", exc.message) from None

    return run


def feedback_event(item: FeedbackItem) -> dict[str, Any]:
    """What ``feedback`` queues for a body (``event_body``'s result, built without a model dump:
    a batch builds thousands)."""
    payload: dict[str, Any] = {"quality": item.payload.quality}
    if item.payload.signal is not None:
        payload["signal"] = item.payload.signal
    return {"model": item.model, "payload": payload, "now_ms": item.now_ms, "embedding": item.embedding}


@register("feedback_batch", FeedbackBatch, async_ok=True)
def _feedback_batch(session: Session, body: FeedbackBatch, async_: bool) -> dict:
    """Many feedback events in one call: validated and checked like single ``feedback`` requests
    (an error names ``events.<index>.<field>`` and nothing is queued), queued in one round trip,
    applied in the given order, each once per ``event_id``."""
    items = [(ev.event_id, feedback_event(ev)) for ev in body.events]
    tickets = learning(session).submit_many(
        body.namespace, "feedback", items, check=_check_each(_check_feedback, list(body.events), "events."),
        epoch_bound=True, wait=not async_)
    ids = [t["event_id"] for t in tickets]
    duplicates = sum(t["status"] == "duplicate" for t in tickets)
    if async_:
        return {"status": "queued", "events": len(ids), "duplicates": duplicates,
                "tickets": [t["ticket"] for t in tickets], "event_ids": ids}
    results = [t["result"] for t in tickets]
    failed = [{"index": i, "event_id": r["event_id"], "error": r.get("error", "update failed")}
              for i, r in enumerate(results) if not r.get("ok")]
    data = next((r["data"] for r in reversed(results) if r.get("ok")), {})
    return {"events": len(ids), "applied": len(ids) - len(failed), "duplicates": duplicates,
            "failed": failed, "updates": data.get("updates"), "lr": data.get("lr"),
            "version": max(r["version"] for r in results), "event_ids": ids}


@register("train_router", TrainRouter, async_ok=True)
def _train_router(session: Session, body: TrainRouter, async_: bool) -> dict:
    """Batch training from the recorded outcomes (the most recent ``max_samples``)."""
    lrn = learning(session)
    cur = lrn.require(body.namespace, "router", "init_router")
    router = cur.core
    if body.epochs * body.max_samples * router.in_dim > limits.TRAIN_MAX_WORK:
        raise InvalidInput("epochs", f"epochs x max_samples x in_dim must be at most {limits.TRAIN_MAX_WORK:,} "
                                     f"(here at most {max(limits.TRAIN_MAX_WORK // (body.max_samples * router.in_dim), 0)} "
                                     "epochs)")
    with redis_errors():
        rows = lrn.store.outcomes(body.namespace, body.max_samples)
    samples = [{k: v for k, v in (("embedding", o["embedding"]), ("target", o["target"]),
                                  ("quality", o["quality"]), ("estimated_tokens", o.get("estimated_tokens")))
                if v is not None}
               for o in rows if len(o["embedding"]) == router.in_dim and o["target"] in router.targets]
    if not samples:
        return {"samples": 0, "trained": False, "version": cur.version}
    return lrn.submit(body.namespace, "train_router", {"samples": samples, "epochs": body.epochs},
                      event_id=body.event_id, wait=not async_)


@register("poll", Poll)
def _poll(session: Session, body: Poll) -> dict:
    return learning(session).poll(body.ticket)


# -- reads -------------------------------------------------------------------------------------


def vector(values: list[float]) -> np.ndarray:
    """A validated list of floats as float64 (packing through struct is ~2x faster than
    ``np.asarray`` on a list; the values are the same)."""
    return np.frombuffer(struct.pack(f"<{len(values)}d", *values), dtype=np.float64)


@register("apply_adapter", ApplyAdapter)
def _apply_adapter(session: Session, body: ApplyAdapter) -> dict:
    x = vector(body.embedding)

    def answer(cur: Current | None) -> dict:
        core = _needs(cur, "instant", "init_instant").core
        _dim(body.embedding, "embedding", core.in_dim)
        _dim(body.logits, "logits", len(core.targets))
        with learn_errors():
            logits = core.apply(x, body.logits)
        return {"logits": logits.tolist(), "targets": list(core.targets), "version": cur.version}

    return learning(session).read(body.namespace, "instant", answer)


def route_read(cur: Current, embedding: list[float] | np.ndarray, estimated_tokens: int | None = None,
               adapter_logits: list[float] | None = None) -> dict:
    """Route on the current router without changing it.

    A read must not advance the stored exploration generator, and equal requests on equal state
    must answer alike (after a restart too), so exploration draws from a generator seeded by the
    state's checksum and the request: the share of explored requests is still ``epsilon``.
    """
    core = cur.core
    router = object.__new__(type(core))  # a shallow copy (copy.copy is 3x slower): arrays
    router.__dict__.update(core.__dict__)  # shared read-only, counters and generator its own
    x = np.asarray(embedding, dtype=np.float64)
    if router.epsilon > 0:
        h = cur.seed_hash.copy()
        h.update(x.tobytes())
        h.update(repr((estimated_tokens, adapter_logits)).encode())
        router._rng = _Draws(h.digest())
    return router.route(x, estimated_tokens=estimated_tokens, adapter_logits=adapter_logits)


class _Draws:
    """The two draws ``FastGRNNRouter.route`` makes (explore?, which target), taken from a digest:
    as random as the digest, and ~40x cheaper than seeding a numpy generator per request."""

    def __init__(self, digest: bytes) -> None:
        self._u = int.from_bytes(digest[:8], "little") / 2.0**64
        self._k = int.from_bytes(digest[8:16], "little")

    def random(self) -> float:
        return self._u

    def integers(self, n: int) -> int:
        return self._k % n


@register("route", Route)
def _route(session: Session, body: Route) -> dict:
    x = vector(body.embedding)

    def answer(cur: Current | None) -> dict:
        router = _needs(cur, "router", "init_router").core
        _dim(body.embedding, "embedding", router.in_dim)
        _dim(body.adapter_logits, "adapter_logits", len(router.targets))
        with learn_errors():
            out = route_read(cur, x, body.estimated_tokens, body.adapter_logits)
        out["version"] = cur.version
        return out

    return learning(session).read(body.namespace, "router", answer)


@register("ewc_penalty", EwcPenalty)
def _ewc_penalty(session: Session, body: EwcPenalty) -> dict:
    def answer(cur: Current | None) -> dict:
        if cur is None:
            return {"penalty": 0.0, "version": 0}
        with learn_errors():
            penalty = cur.core.penalty(body.param_id, body.params)
        return {"penalty": penalty, "version": cur.version}

    return learning(session).read(body.namespace, "ewc", answer)


@register("attend", Attend)
def _attend(session: Session, body: Attend) -> dict:
    cur = learning(session).require(body.namespace, "attention", "init_attention")
    _dim(body.query, "query", cur.core.dim)
    if body.subgraph is not None:
        if body.src is not None:
            raise InvalidInput("src", "give either subgraph or src, not both")
        if body.now_ms is None:
            raise InvalidInput("now_ms", "is required with subgraph")
        nodes = dict(body.subgraph.nodes)
        edges = [e.model_dump() for e in body.subgraph.edges]
        now = body.now_ms
        source = "body"
    else:
        if body.src is None:
            raise InvalidInput("src", "is required when no subgraph is given")
        if body.t is None:
            raise InvalidInput("t", "is required with src")
        from workers.subgraph import fetch

        max_edges = graph_max_edges(body.max_edges, cur.core.dim)  # before the graph is read
        nodes, edges = fetch(session.store, body.namespace, body.src, body.hops, body.t,
                             body.known_at, max_edges, cur.core.dim)
        now = body.now_ms if body.now_ms is not None else body.t
        source = "graph"
    with learn_errors():
        vector, weights = cur.core.attend(body.query, nodes, edges, now)
    return {"vector": vector.tolist(), "weights": weights, "nodes": len(weights), "edges": len(edges),
            "source": source, "version": cur.version}


def graph_max_edges(requested: int | None, dim: int) -> int:
    """The edges an attend may read from the graph: its nodes (at most edges + 1) times ``dim``
    stay within ``ATTEND_MAX_VALUES``; unset, the most that fits, at most 1,024."""
    fits = limits.ATTEND_MAX_VALUES // dim - 1
    if requested is None:
        return min(1024, fits)  # fits >= 127: MAX_DIM is 8,192
    if requested > fits:
        raise InvalidInput("max_edges", f"(max_edges + 1) x dim must be at most {limits.ATTEND_MAX_VALUES:,} "
                                        f"(here at most {max(fits, 0)} edges)")
    return requested


@register("upsert_node", UpsertNode)
def _upsert_node(session: Session, body: UpsertNode) -> dict:
    from workers.subgraph import upsert_embeddings

    upsert_embeddings(session.graph, body.namespace, [{"name": body.name, "embedding": list(body.embedding)}])
    return {"name": body.name, "dim": len(body.embedding)}


# -- health ------------------------------------------------------------------------------------


def learning_health(session: Session, body: Any) -> dict:
    """Per-core readiness and update counts of the namespace, queue depth, live workers."""
    ns = getattr(body, "namespace", DEFAULT_NAMESPACE)
    lrn = learning(session)
    cores: dict[str, Any] = {}
    updates: dict[str, int] = {}
    fisher_keys = boundaries = 0
    pending = 0
    try:
        with redis_errors():
            store = lrn.store
            for kind in KINDS:
                depth = store.depth(ns, kind)
                pending += depth
                entry: dict[str, Any] = {"ready": False, "version": 0, "updates": 0, "pending": depth}
                try:
                    cur = lrn.verify(ns, kind)  # the stored bytes, checked now
                except StateCorrupt as exc:
                    entry["error"] = str(exc)
                    cur = None
                if cur is not None:
                    entry.update(ready=True, version=cur.version, updates=cur.record.updates)
                    entry.update(_details(kind, cur.core))
                    if kind == "ewc":
                        fisher_keys, boundaries = cur.core.fisher_keys, cur.core.boundaries
                note = store.error(ns, kind)
                if note and "error" not in entry:
                    entry["error"] = note
                cores[kind] = entry
                updates[kind] = entry["updates"]
            queue = {"pending_events": pending, "tasks": int(store.r.llen("kg")),
                     "unacked": int(store.r.hlen("unacked"))}
            from workers.heartbeat import alive

            workers = alive(store.r)
    except KgError as exc:
        return {"namespace": ns, "cores": {}, "updates": {}, "learning_error": str(exc)}
    return {"namespace": ns, "cores": cores, "updates": updates, "fisher_keys": fisher_keys,
            "boundaries": boundaries, "queue": queue, "workers": workers}


def _details(kind: str, core: Any) -> dict:
    if kind == "instant":
        return {"targets": list(core.targets), "in_dim": core.in_dim, "lr": core.lr}
    if kind == "router":
        return {"targets": list(core.targets), "in_dim": core.in_dim, "algo": core.mode,
                "outcomes": core.outcome_counts, "boundaries": core.boundaries,
                "shift_score": core.shift_score}
    if kind == "ewc":
        return {"fisher_keys": core.fisher_keys, "boundaries": core.boundaries,
                "losses_seen": core.losses_seen}
    return {"dim": core.dim, "heads": core.heads}


HEALTH_HOOKS["learning"] = learning_health
