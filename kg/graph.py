"""The Bolt boundary: one driver per process, managed transactions, error conversion.

Writes go through ``execute_write`` so the driver retries transient errors
(``Neo.TransientError.*``: Neo4j's deadlocks and lock timeouts; ArcadeDB maps its
commit conflicts to ``DeadlockDetected``).  Reads run each statement as its own
auto-commit transaction (``AutoCommit``: a round trip less) and retry the same
errors here, for as long as the driver would.  A
lost race on a unique constraint (two writers creating the same version key) is
``Neo.ClientError.Schema.ConstraintValidationFailed`` on both servers, a client
error the driver does not retry; ``write`` retries it a bounded number of times,
which is safe because every transaction function here re-reads what it acts on.
"""

from __future__ import annotations

import random
import time
from functools import partial
from typing import Any, Callable, TypeVar

import neo4j
from neo4j import GraphDatabase, READ_ACCESS
from neo4j.exceptions import (
    AuthError,
    ConstraintError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from kg.config import Settings
from kg.cypher import in_area, q
from kg.errors import GraphError, GraphUnavailable
from kg.redact import redact_url

T = TypeVar("T")
CONSTRAINT_RETRIES = 20


class StaleRead(Exception):
    """A transaction function found the world changed between its read and write."""


class Graph:
    """A driver bound to one database; thread-safe, one per process."""

    def __init__(self, settings: Settings, retry_s: float = 30.0) -> None:
        if not settings.graph_uri:
            raise GraphUnavailable("no graph server configured: run `kg up` or set KG_GRAPH_URI")
        self.settings = settings
        self.database = settings.graph_database
        self.server = settings.graph_server
        self.driver_retry_s = retry_s
        auth = (settings.graph_user, settings.graph_password or "")
        options: dict[str, Any] = {}
        if self.server == "neo4j":
            # the service's statements are fixed and checked by tests/kg/test_plans.py: the
            # server's hints about them are noise in every worker's log
            options["notifications_min_severity"] = "OFF"
        self.driver = GraphDatabase.driver(
            settings.graph_uri, auth=auth, max_transaction_retry_time=retry_s,
            connection_acquisition_timeout=30.0, connection_timeout=5.0, **options,
        )

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(tx, …)`` in a retried write transaction."""
        return self._run({}, "execute_write", (ConstraintError, StaleRead), fn, *args, **kwargs)

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(tx, …)`` as a retried read in which each ``tx.run`` is its own auto-commit
        statement (see ``AutoCommit``)."""
        return self._run({"default_access_mode": READ_ACCESS}, _auto_commit,
                         (StaleRead, TransientError, SessionExpired, ServiceUnavailable), fn, *args, **kwargs)

    def _run(self, session_options: dict, execute: str | Callable[..., T], retry_on: tuple[type[Exception], ...],
             fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The driver retries transient errors in ``execute_write``; this retries ``retry_on`` with
        backoff on top (an auto-commit read retries the driver's transient errors itself, for as
        long as the driver would: ``retry_s``)."""
        deadline = time.monotonic() + self.driver_retry_s
        races = waits = 0
        while True:
            try:
                with self.driver.session(database=self.database, **session_options) as session:
                    call = getattr(session, execute) if isinstance(execute, str) else partial(execute, session)
                    return call(fn, *args, **kwargs)
            except retry_on as exc:
                if isinstance(exc, _DRIVER_RETRIES):
                    if time.monotonic() >= deadline:
                        raise self._converted(exc) from exc
                    waits += 1
                    _backoff(min(waits, 6))
                    continue
                races += 1
                if races == CONSTRAINT_RETRIES:
                    raise GraphError(f"a write kept racing other writers ({_code(exc)}); "
                                     f"gave up after {CONSTRAINT_RETRIES} attempts") from exc
                _backoff(races - 1)
            except (ServiceUnavailable, SessionExpired, AuthError, OSError, TransientError, Neo4jError) as exc:
                raise self._converted(exc) from exc

    def _converted(self, exc: Exception) -> Exception:
        """A driver error as the service's (the code names the failure; a message may echo values)."""
        if isinstance(exc, (ServiceUnavailable, SessionExpired, AuthError, OSError)):
            return GraphUnavailable(f"graph server at {redact_url(self.settings.graph_uri)} unavailable: "
                                    f"{type(exc).__name__}")
        if isinstance(exc, TransientError):  # still failing after the driver's own retries
            return GraphUnavailable(f"graph server busy: {exc.code}, retried for {self.driver_retry_s:g} s")
        return GraphError(f"the graph server refused a statement: {getattr(exc, 'code', None)}")

    def apply_schema(self) -> None:
        """Create constraints and indexes; each statement is ``IF NOT EXISTS``."""
        for statement in in_area("schema"):
            self.write(lambda tx, s=statement: tx.run(s).consume())


class AutoCommit:
    """What a read function uses of a transaction, ``run``, with each statement its own auto-commit
    transaction.

    A managed transaction (``execute_read``) costs a round trip more than the statement: the
    driver pipelines ``BEGIN`` with the first ``RUN`` but waits for ``COMMIT``, about a third of
    an indexed lookup's time here.  A read needs neither the commit nor a snapshot (Neo4j reads
    committed data statement by statement inside a transaction too), and the function re-reads
    everything when ``Graph.read`` runs it again, so dropping the transaction changes no answer.
    Results are read whole before the next statement, as in a managed transaction.
    """

    __slots__ = ("_session",)

    def __init__(self, session: neo4j.Session) -> None:
        self._session = session

    def run(self, query: str, parameters: dict | None = None, **kwargs: Any) -> neo4j.Result:
        return self._session.run(query, parameters, **kwargs)


def _auto_commit(session: neo4j.Session, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(AutoCommit(session), *args, **kwargs)


_DRIVER_RETRIES = (TransientError, SessionExpired, ServiceUnavailable)  # what execute_read would retry


def _code(exc: Exception) -> str:
    return getattr(exc, "code", None) or type(exc).__name__


def _backoff(attempt: int) -> None:
    """Sleep before retry ``attempt``: exponential with full jitter, capped at 0.5 s."""
    time.sleep(random.uniform(0.0, min(0.5, 0.01 * 2 ** attempt)))


def rows(tx: neo4j.ManagedTransaction, statement: str, **params: Any) -> list[dict]:
    """Run one statement and read its whole result (the driver may re-run us)."""
    return tx.run(statement, params).data()


class BulkRows(list):
    """Rows for one UNWIND statement, with a short ``repr``.

    The driver (6.4) builds the text of a debug log line with the ``repr`` of
    every statement's parameters even when debug logging is off: 7 ms of CPU
    per 2,000-row ingest batch, a few per cent of the whole ingest.
    """

    def __repr__(self) -> str:
        return f"<{len(self)} rows>"


class BulkMap(dict):
    """A map parameter of many entries, with ``BulkRows``' short ``repr``."""

    def __repr__(self) -> str:
        return f"<{len(self)} entries>"


def ping_graph(settings: Settings) -> tuple[bool, str]:
    """(healthy, detail) for ``kg status`` and ``health``."""
    try:
        with Graph(settings, retry_s=0.0) as graph:
            value = graph.read(lambda tx: tx.run(q("ping")).single()["ok"])
        return value == 1, ""
    except (GraphUnavailable, GraphError, Neo4jError, OSError) as exc:
        return False, type(exc).__name__
