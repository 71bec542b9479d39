"""The Bolt boundary: one driver per process, managed transactions, error conversion.

Writes go through ``execute_write`` and reads through ``execute_read`` so the
driver retries transient errors (``Neo.TransientError.*``: Neo4j's deadlocks and
lock timeouts; ArcadeDB maps its commit conflicts to ``DeadlockDetected``).  A
lost race on a unique constraint (two writers creating the same version key) is
``Neo.ClientError.Schema.ConstraintValidationFailed`` on both servers, a client
error the driver does not retry; ``write`` retries it a bounded number of times,
which is safe because every transaction function here re-reads what it acts on.
"""

from __future__ import annotations

import random
import time
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
        """Run ``fn(tx, …)`` in a retried read transaction."""
        return self._run({"default_access_mode": READ_ACCESS}, "execute_read", (StaleRead,), fn, *args, **kwargs)

    def _run(self, session_options: dict, execute: str, retry_on: tuple[type[Exception], ...],
             fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The driver retries transient errors; this retries ``retry_on`` with backoff on top."""
        for attempt in range(CONSTRAINT_RETRIES):
            try:
                with self.driver.session(database=self.database, **session_options) as session:
                    return getattr(session, execute)(fn, *args, **kwargs)
            except retry_on as exc:
                if attempt == CONSTRAINT_RETRIES - 1:
                    raise GraphError(f"a write kept racing other writers ({_code(exc)}); "
                                     f"gave up after {CONSTRAINT_RETRIES} attempts") from exc
                _backoff(attempt)
            except (ServiceUnavailable, SessionExpired, AuthError, OSError) as exc:
                raise GraphUnavailable(f"graph server at {redact_url(self.settings.graph_uri)} unavailable: {type(exc).__name__}") from exc
            except TransientError as exc:  # still failing after the driver's own retries
                raise GraphUnavailable(f"graph server busy: {exc.code}, retried for "
                                       f"{self.driver_retry_s:g} s") from exc
            except Neo4jError as exc:  # the code names the failure; the message may echo values
                raise GraphError(f"the graph server refused a statement: {exc.code}") from exc
        raise AssertionError("unreachable")

    def apply_schema(self) -> None:
        """Create constraints and indexes; each statement is ``IF NOT EXISTS``."""
        for statement in in_area("schema"):
            self.write(lambda tx, s=statement: tx.run(s).consume())


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


def ping_graph(settings: Settings) -> tuple[bool, str]:
    """(healthy, detail) for ``kg status`` and ``health``."""
    try:
        with Graph(settings, retry_s=0.0) as graph:
            value = graph.read(lambda tx: tx.run(q("ping")).single()["ok"])
        return value == 1, ""
    except (GraphUnavailable, GraphError, Neo4jError, OSError) as exc:
        return False, type(exc).__name__
