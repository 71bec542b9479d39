"""The JSON dispatch protocol: ``{"verb", "body"}`` in, ``{"ok", "verb", "data"|"error"}`` out.

``Session`` owns the connections of one process and answers requests from a verb table it is
given (the composition root, :mod:`service.root`, builds it from the graph verbs of
:mod:`kg.verbs` and the learning verbs of :mod:`workers.verbs`); nothing registers itself by
being imported.  Every failure becomes ``ok: false`` with an error that names the field; a
request that fails validation touches nothing.  A verb with ``async_ok`` also receives the
request's ``"async"`` flag (updates that can answer with a ticket instead of waiting); other
verbs refuse ``"async": true``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from pydantic import BaseModel

from kg import models as m
from kg.config import Settings
from kg.errors import Conflict, InvalidInput, KgError, Unavailable

if TYPE_CHECKING:  # the Bolt driver is imported on the first graph verb, not for learned-state reads
    from kg.graph import Graph
    from kg.store import EdgeStore

log = logging.getLogger(__name__)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Verb:
    """One verb of the surface: ``handler(session, body)`` answers a ``model`` body; with
    ``async_ok`` the handler is ``handler(session, body, async_)``."""

    name: str
    model: type[BaseModel]
    handler: Callable[..., Any]
    async_ok: bool = False
    summary: str = ""


HealthSection = Callable[["Session", Any], dict]
"""A part of the ``health`` answer: ``section(session, body) -> dict``, merged in order."""


def verb_table(*tables: Sequence[Verb]) -> dict[str, Verb]:
    """The verbs of ``tables`` by name; a name given twice is a programming error."""
    verbs: dict[str, Verb] = {}
    for table in tables:
        for verb in table:
            if verb.name in verbs:
                raise ValueError(f"verb {verb.name!r} defined twice")
            verbs[verb.name] = verb
    return verbs


class Session:
    """One process's entry point to the service; thread-safe, reuse it."""

    def __init__(self, settings: Settings, verbs: Mapping[str, Verb],
                 health: Sequence[HealthSection] = ()) -> None:
        self.settings = settings
        self.verbs = verbs
        self.health_sections = tuple(health)
        self._graph: Graph | None = None
        self._store: EdgeStore | None = None

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

            self._store = EdgeStore(self.graph, self.settings.functional_relations,
                                    sealed_through=self.settings.sealed_through)
        return self._store

    def health(self, body: Any) -> dict:
        """The ``health`` answer: every section's report, in order."""
        report: dict[str, Any] = {}
        for section in self.health_sections:
            report.update(section(self, body))
        return report

    def close(self) -> None:
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
            verb = self.verbs.get(verb_name) if verb_name is not None else None
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
