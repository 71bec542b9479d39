"""The caller's side of the learning verbs: how a table entry of :mod:`workers.verbs` answers a
request.  An update is checked against the current core and queued for the workers (answering
with the applied result, or a ticket with ``async``); a read is answered from the current core in
this process.  The verbs that are neither (batch forms, graph reads, ``poll``) have their own
handler here.  ``session`` is the composition root's session: ``settings``, ``store`` (the graph)
and ``learning`` (:class:`workers.service.Learning`).
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from kg import models as m
from kg.errors import InvalidInput, KgError
from kg.models import DEFAULT_NAMESPACE
from kg.redact import redact_url
from learn import limits
from learn.limits import MAX_BATCH
from workers import checks
from workers.errors import StateCorrupt
from workers.samples import router_samples
from workers.requests import (Attend, FeedbackBatch, FeedbackItem, Poll, RecordTrajectories, TrainRouter,
                               UpsertNode)
from workers.connect import redis_errors
from workers.events import VECTOR_KEYS
from workers.store_keys import KINDS
from workers.store_record import now_ms

def event_body(body: BaseModel) -> dict[str, Any]:
    """What an update queues: the body without namespace and event id (vectors kept as given,
    ``event_bytes`` packs them)."""
    data = body.model_dump(mode="json", exclude={"namespace", "event_id", *VECTOR_KEYS}, exclude_none=True)
    for key in VECTOR_KEYS:
        value = getattr(body, key, None)
        if value is not None:
            data[key] = value
    return data


def queued_body(session: Any, entry: Any, body: BaseModel) -> dict[str, Any]:
    """What an update of ``entry`` queues: :func:`event_body`, plus the project settings the entry
    takes (``entry.from_settings``: body key to setting) where the body gives none, and the time it
    is queued (``at_ms``) if the entry is ``stamped``: a core reads no clock."""
    data = event_body(body)
    for key, name in entry.from_settings.items():
        data.setdefault(key, getattr(session.settings.workers, name))
    if entry.stamped:
        data["at_ms"] = now_ms()
    return data


def update_handler(entry: Any) -> Callable[[Any, Any, bool], dict]:
    """The handler of an update verb: check against the current core, queue, wait or ticket."""

    def handler(session: Any, body: Any, async_: bool) -> dict:
        check = None if entry.check is None else (lambda core: entry.check(core, body))
        return session.learning.submit(body.namespace, entry.core, entry.name,
                                       queued_body(session, entry, body), event_id=body.event_id,
                                       wait=not async_, check=check, epoch_bound=entry.epoch_bound)

    handler.__name__ = f"_{entry.name}"
    return handler


def read_handler(entry: Any) -> Callable[[Any, Any], dict]:
    """The handler of a read verb: ``entry.read(current, body)`` on the namespace's current core."""

    def handler(session: Any, body: Any) -> dict:
        return session.learning.read(body.namespace, entry.core, lambda cur: entry.read(cur, body))

    handler.__name__ = f"_{entry.name}"
    return handler


def submit_many(session: Any, entry: Any, namespace: str, bodies: list[dict]) -> list[dict]:
    """Queue many updates of one verb at once (one round trip), without waiting.

    Each body is validated and checked like a single request (errors name ``<index>.<field>``);
    nothing is queued unless all pass. Returns one ``{ticket, status, event_id}`` per body.
    """
    if len(bodies) > MAX_BATCH:
        raise InvalidInput("bodies", f"at most {MAX_BATCH:,} per call")
    models = [m.parse(entry.body, dict(b, namespace=namespace), prefix=f"{i}.") for i, b in enumerate(bodies)]
    items = [(model.event_id, queued_body(session, entry, model)) for model in models]
    return session.learning.submit_many(namespace, entry.core, entry.name, items,
                                        check=checks.each(entry.check, models, ""),
                                        epoch_bound=entry.epoch_bound)


def feedback_event(item: FeedbackItem) -> dict[str, Any]:
    """What ``feedback`` queues for a body (``event_body``'s result, built without a model dump:
    a batch builds thousands)."""
    payload: dict[str, Any] = {"quality": item.payload.quality}
    if item.payload.signal is not None:
        payload["signal"] = item.payload.signal
    return {"model": item.model, "payload": payload, "now_ms": item.now_ms, "embedding": item.embedding}


def feedback_batch(feedback: Any, session: Any, body: FeedbackBatch, async_: bool) -> dict:
    """Many ``feedback`` events (``feedback``: that verb's table entry) in one call: validated and
    checked like single requests (an error names ``events.<index>.<field>`` and nothing is queued),
    queued in one round trip, applied in the given order, each once per ``event_id``."""
    items = [(ev.event_id, feedback_event(ev)) for ev in body.events]
    return submit_batch(feedback, session, body.namespace, items, list(body.events), "events.", async_,
                        ("updates", "lr"))


def record_trajectories(record: Any, session: Any, body: RecordTrajectories, async_: bool) -> dict:
    """Many ``record_trajectory`` events (``record``: that verb's table entry) in one call, like
    ``feedback_batch`` (an error names ``trajectories.<index>.<field>``), all stamped with the time
    they were queued."""
    at = now_ms()
    items = [(t.event_id, dict(event_body(t), at_ms=at)) for t in body.trajectories]
    return submit_batch(record, session, body.namespace, items, list(body.trajectories), "trajectories.",
                        async_, ("buffered", "patterns", "recorded"))


def submit_batch(entry: Any, session: Any, namespace: str, items: list[tuple[str | None, dict]], models: list,
                 prefix: str, async_: bool, keep: tuple[str, ...]) -> dict:
    """Queue the events of a batch verb (checked first: an error names ``<prefix><index>.<field>``),
    and answer with their tickets, or, waiting, what was applied and the ``keep`` fields of the last
    applied result."""
    tickets = session.learning.submit_many(
        namespace, entry.core, entry.name, items,
        check=checks.each(entry.check, models, prefix), epoch_bound=entry.epoch_bound, wait=not async_)
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
            "failed": failed, **{k: data.get(k) for k in keep},
            "version": max(r["version"] for r in results), "event_ids": ids}


def train_router(session: Any, body: TrainRouter, async_: bool) -> dict:
    """Batch training from the recorded outcomes (the most recent ``max_samples``)."""
    lrn = session.learning
    cur = lrn.require(body.namespace, "router", "init_router")
    router = cur.core
    if body.epochs * body.max_samples * router.in_dim > limits.TRAIN_MAX_WORK:
        raise InvalidInput("epochs", f"epochs x max_samples x in_dim must be at most {limits.TRAIN_MAX_WORK:,} "
                                     f"(here at most {max(limits.TRAIN_MAX_WORK // (body.max_samples * router.in_dim), 0)} "
                                     "epochs)")
    with redis_errors():
        rows = lrn.store.outcomes(body.namespace, body.max_samples)
    samples = router_samples(rows, router.in_dim, router.targets)
    if not samples:
        return {"samples": 0, "trained": False, "version": cur.version}
    return lrn.submit(body.namespace, "router", "train_router", {"samples": samples, "epochs": body.epochs},
                      event_id=body.event_id, wait=not async_)


def poll(session: Any, body: Poll) -> dict:
    """The state of an update queued with ``async``: queued, applied (its result) or failed."""
    return session.learning.poll(body.ticket)


def attend(session: Any, body: Attend) -> dict:
    """Graph attention over a subgraph given in the body, or read as of ``t`` from the graph."""
    cur = session.learning.require(body.namespace, "attention", "init_attention")
    checks.dim(body.query, "query", cur.core.dim, "the attention's dim, set by init_attention")
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
    with checks.learn_errors():
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


def upsert_node(session: Any, body: UpsertNode) -> dict:
    """Store a node's embedding in the graph, for ``attend``."""
    from workers.subgraph import upsert_embeddings

    upsert_embeddings(session.graph, body.namespace, [{"name": body.name, "embedding": list(body.embedding)}])
    return {"name": body.name, "dim": len(body.embedding)}


# -- health sections ---------------------------------------------------------------------------


def redis_health(session: Any, body: Any) -> dict:
    """The Redis section of ``health``: a fresh connection and a PING."""
    from workers.connect import ping_redis

    settings = session.settings
    if not settings.redis_url:
        return {"redis": {"reachable": False, "detail": "not configured"}}
    reachable, detail = ping_redis(settings.redis_url)
    return {"redis": {"reachable": True, "url": redact_url(settings.redis_url)} if reachable
            else {"reachable": False, "detail": detail}}


def learning_health(session: Any, body: Any) -> dict:
    """Per-core readiness and update counts of the namespace, queue depth, live workers."""
    ns = getattr(body, "namespace", DEFAULT_NAMESPACE)
    lrn = session.learning
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
        return {"targets": list(core.targets), "in_dim": core.in_dim, "lr": core.lr,
                "consolidations": core.consolidations, "pending_updates": core.pending_updates}
    if kind == "router":
        return {"targets": list(core.targets), "in_dim": core.in_dim, "algo": core.mode,
                "outcomes": core.outcome_counts, "boundaries": core.boundaries,
                "shift_score": core.shift_score, "policy": core.policy, "exploration_rate": core.exploration_rate,
                "ucb_alpha": core.ucb_alpha}
    if kind == "ewc":
        return {"fisher_keys": core.fisher_keys, "boundaries": core.boundaries,
                "losses_seen": core.losses_seen}
    if kind == "patterns":
        return {"targets": list(core.targets), "dim": core.dim, "patterns": core.patterns,
                "buffered": core.buffered, "recorded": core.recorded, "clusterings": core.clusterings}
    return {"dim": core.dim, "heads": core.heads}
