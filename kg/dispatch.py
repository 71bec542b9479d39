"""The JSON dispatch surface: ``{"verb", "body"}`` in, ``{"ok", "verb", "data"|"error"}`` out.

``Session`` owns the connections of one process and maps each verb to a
validated body model and a handler.  Every failure becomes ``ok: false`` with
an error that names the field; a request that fails validation touches nothing.
Other packages add verbs with ``register`` (the learning verbs live in
``workers.verbs``, imported at the end of this module).  A verb registered with
``async_ok`` also receives the request's ``"async"`` flag (updates that can
answer with a ticket instead of waiting); other verbs refuse ``"async": true``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from kg import models as m
from kg.config import Settings
from kg.errors import Conflict, InvalidInput, KgError, Unavailable
from kg.redact import redact_url

if TYPE_CHECKING:  # the Bolt driver is imported on the first graph verb, not for learned-state reads
    from kg.graph import Graph
    from kg.store import EdgeStore

log = logging.getLogger(__name__)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Verb:
    model: type[BaseModel]
    handler: Callable[..., Any]
    async_ok: bool = False


VERBS: dict[str, Verb] = {}


def register(name: str, model: type[BaseModel], *, async_ok: bool = False) -> Callable:
    """Decorator: ``handler(session, body)`` answers ``name`` with a ``model`` body.

    With ``async_ok`` the handler is ``handler(session, body, async_)``.
    """
    def wrap(handler: Callable[..., Any]) -> Callable:
        if name in VERBS:
            raise ValueError(f"verb {name!r} registered twice")
        VERBS[name] = Verb(model, handler, async_ok)
        return handler
    return wrap


class Session:
    """One process's entry point to the service; thread-safe, reuse it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._graph: Graph | None = None
        self._store: EdgeStore | None = None
        self.extensions: dict[str, Any] = {}

    @property
    def graph(self) -> Graph:
        """The driver, created on first use with the schema applied (importing the driver
        costs ~0.25 s, which a process that only reads learned state never pays)."""
        if self._graph is None:
            from kg.graph import Graph

            graph = Graph(self.settings)
            graph.apply_schema()
            self._graph = graph
        return self._graph

    @property
    def store(self) -> EdgeStore:
        if self._store is None:
            from kg.store import EdgeStore

            self._store = EdgeStore(self.graph, self.settings.functional_relations)
        return self._store

    def close(self) -> None:
        for ext in self.extensions.values():
            getattr(ext, "close", lambda: None)()
        if self._graph is not None:
            self._graph.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dispatch(self, request: Any) -> dict:
        """Answer one request; never raises for bad input or a down backend.

        The answer's ``verb`` is the request's verb when that is a string, else null (the
        response schema says string or null); a string that cannot be encoded as UTF-8 (a lone
        surrogate) is not echoed either, so the answer can always be written out.
        """
        verb_name = request.get("verb") if isinstance(request, dict) else None
        if not isinstance(verb_name, str) or _LONE_SURROGATE.search(verb_name):
            verb_name = None
        try:
            if not isinstance(request, dict):
                raise InvalidInput("request", "must be a JSON object with verb and body")
            extra = set(request) - {"verb", "body", "async"}
            if extra:
                raise InvalidInput(sorted(extra)[0], "is not a known request field")
            if not isinstance(request.get("verb"), str):
                raise InvalidInput("verb", "is required and must be a string")
            verb = VERBS.get(verb_name) if verb_name is not None else None
            if verb is None:
                raise InvalidInput("verb", "is not a known verb")
            async_ = request.get("async", False)
            if not isinstance(async_, bool):
                raise InvalidInput("async", "must be true or false")
            if async_ and not verb.async_ok:
                raise InvalidInput("async", "is only supported by update verbs")
            body = m.parse(verb.model, request.get("body", {}), prefix="")
            data = verb.handler(self, body, async_) if verb.async_ok else verb.handler(self, body)
            return {"ok": True, "verb": verb_name, "data": data}
        except (InvalidInput, Conflict, Unavailable, KgError) as exc:
            return {"ok": False, "verb": verb_name, "error": str(exc)}
        except Exception as exc:  # a bug: report it without echoing the input
            log.exception("verb %s failed", verb_name)
            return {"ok": False, "verb": verb_name, "error": f"internal error: {type(exc).__name__}"}

    def dispatch_line(self, line: str | bytes) -> str:
        """One JSON line in, one JSON line out (``kg dispatch``); bytes that are not
        UTF-8 get an answer like any other bad line (the next line is still read)."""
        size = len(line) if isinstance(line, bytes) else len(line.encode("utf-8", "surrogatepass"))
        if size > self.settings.max_request_bytes:
            return json.dumps({"ok": False, "verb": None,
                               "error": f"request: larger than {self.settings.max_request_bytes} bytes"})
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                return json.dumps({"ok": False, "verb": None, "error": "request: not valid UTF-8"})
        try:
            request = json.loads(line)
        except ValueError:
            return json.dumps({"ok": False, "verb": None, "error": "request: not valid JSON"})
        except RecursionError:
            return json.dumps({"ok": False, "verb": None, "error": "request: nested too deeply"})
        return json.dumps(self.dispatch(request), ensure_ascii=False)


# -- graph verbs ------------------------------------------------------------

@register("insert_edge", m.InsertEdge)
def _insert_edge(session: Session, body: m.InsertEdge) -> dict:
    return session.store.insert_edge(body.namespace, body.to_new_edge())


@register("get_edge", m.GetEdge)
def _get_edge(session: Session, body: m.GetEdge) -> dict:
    return session.store.get_edge(body.namespace, body.edge_id)


@register("history", m.History)
def _history(session: Session, body: m.History) -> list[dict]:
    return session.store.history(body.namespace, body.edge_id)


@register("query_at", m.QueryAt)
def _query_at(session: Session, body: m.QueryAt) -> list[dict]:
    return session.store.query_at(body.namespace, body.src, body.t, body.known_at)


@register("invalidate_edge", m.InvalidateEdge)
def _invalidate(session: Session, body: m.InvalidateEdge) -> dict:
    return session.store.invalidate_edge(body.namespace, body.edge_id, body.invalid_at, body.expired_at)


@register("contradict", m.Contradict)
def _contradict(session: Session, body: m.Contradict) -> dict:
    edge = body.new_edge.to_new_edge(default_created_at=body.now_ms)
    return session.store.contradict(body.namespace, edge, list(body.contradicts), body.now_ms)


@register("ingest", m.Ingest)
def _ingest(session: Session, body: m.Ingest) -> dict:
    from kg.ingest import edges_from_records

    edges, rejected = edges_from_records(body.edges, body.created_at)
    result = session.store.insert_many(body.namespace, edges)
    return {
        "inserted": result.inserted, "unchanged": result.unchanged,
        "invalidated": result.invalidated,
        "rejected": [{"index": i, "error": e} for i, e in rejected]
        + [{"id": i, "error": e} for i, e in result.rejected],
    }


@register("health", m.Empty)
def _health(session: Session, body: m.Empty) -> dict:
    from kg.graph import ping_graph

    graph_ok, graph_detail = ping_graph(session.settings) if session.settings.graph_uri else (False, "not configured")
    report: dict[str, Any] = {
        "graph": {"reachable": graph_ok, "uri": redact_url(session.settings.graph_uri), "detail": graph_detail},
        "redis": _redis_health(session.settings),
    }
    for hook in HEALTH_HOOKS.values():
        report.update(hook(session, body))
    return report


# Extra health sections: ``hook(session, body) -> dict``, merged into the report.
HEALTH_HOOKS: dict[str, Callable[[Session, Any], dict]] = {}


def _redis_health(settings: Settings) -> dict:
    from workers.connect import ping_redis

    if not settings.redis_url:
        return {"reachable": False, "detail": "not configured"}
    reachable, detail = ping_redis(settings.redis_url)
    return {"reachable": True, "url": redact_url(settings.redis_url)} if reachable else \
        {"reachable": False, "detail": detail}


import workers.verbs  # noqa: E402,F401  (registers the learning verbs and their health section)
