"""Users' own Cypher, run read-only with ``$t``, ``$known_at`` and ``$ns`` bound.

A write must never persist, so nothing but a plain read is run at all:

1. A lexical check (every server) refuses write and schema clauses (``CREATE``,
   ``MERGE``, ``SET``, ``DELETE``, ``REMOVE``, ``DROP``, ``LOAD CSV``,
   ``FOREACH``, ``CALL { … } IN TRANSACTIONS``, administration commands) outside
   string literals, comments and quoted names.  On ArcadeDB, whose read mode
   let ``CALL { … } IN TRANSACTIONS`` write and keep its writes, procedure calls
   are refused too.
2. On Neo4j, ``EXPLAIN`` reports the statement's type without running it; anything
   but ``r`` (read) is refused.
3. The query then runs in a READ-mode transaction, bounded by a timeout
   (``KG_CYPHER_TIMEOUT_S``), that is always rolled back; if the server still
   reports a change, it is refused.  At most ``KG_CYPHER_MAX_ROWS`` rows are read.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import neo4j
from neo4j import READ_ACCESS
from neo4j.exceptions import ClientError, Neo4jError

from kg.errors import InvalidInput, ReadOnlyViolation
from kg.graph import Graph

MAX_QUERY_CHARS = 100_000
CLIENT_GRACE_S = 1.0  # past the server's own timeout, the caller stops waiting
_WRITE_WORDS = {"CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER", "RENAME",
                "GRANT", "DENY", "REVOKE", "FOREACH", "LOAD", "TERMINATE", "START", "STOP",
                "ENABLE", "DISABLE", "USE"}
# string literals, comments and `quoted names` are blanked before the words are read
_OPAQUE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`]|``)*`|//[^\n]*|/\*.*?\*/", re.S)
_WORD = re.compile(r"(?<![.$:\w])([A-Za-z_][A-Za-z_0-9]*)(?!\s*:(?!:))")
_IN_TRANSACTIONS = re.compile(r"\bIN\s+(?:\d+\s+)?(?:CONCURRENT\s+)?TRANSACTIONS\b", re.I)
_PROCEDURE = re.compile(r"\bCALL\s+[A-Za-z_`]", re.I)


class UserRows(list):
    """The rows of a user query; ``truncated`` when the row limit cut the result."""

    truncated: bool = False


def refuse_writes(query: str, server: str) -> None:
    """Raise ReadOnlyViolation for a write or schema clause, before anything runs."""
    text = _OPAQUE.sub(" ", query)
    if _IN_TRANSACTIONS.search(text):
        raise ReadOnlyViolation("query: CALL { ... } IN TRANSACTIONS is refused (it commits on its own)")
    for match in _WORD.finditer(text):
        word = match.group(1).upper()
        if word in _WRITE_WORDS:
            raise ReadOnlyViolation(f"query: {word} is refused: only reads run here")
    if server != "neo4j" and _PROCEDURE.search(text):
        raise ReadOnlyViolation(f"query: procedure calls are refused on {server}")


def run_read_only(graph: Graph, query: str, *, timeout_s: float = 5.0, max_rows: int = 10_000,
                  **params: Any) -> UserRows:
    """Records of ``query`` as plain dicts; raises ReadOnlyViolation on a write.

    Neo4j stops the transaction at ``timeout_s`` itself.  ArcadeDB ignores a
    transaction timeout, so the caller stops waiting shortly after it instead (the
    server may still finish the computation; nothing it does is kept).
    """
    if not query.strip():
        raise InvalidInput("query", "must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput("query", f"longer than {MAX_QUERY_CHARS} characters")
    refuse_writes(query, graph.server)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["rows"] = _run(graph, query, timeout_s, max_rows, params)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="kg-cypher", daemon=True)
    worker.start()
    worker.join(timeout_s + CLIENT_GRACE_S)
    if worker.is_alive():
        raise InvalidInput("query", f"stopped after the {timeout_s:g} s limit (KG_CYPHER_TIMEOUT_S)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["rows"]


def _run(graph: Graph, query: str, timeout_s: float, max_rows: int, params: dict[str, Any]) -> UserRows:
    records = UserRows()
    with graph.driver.session(database=graph.database, default_access_mode=READ_ACCESS) as session:
        if graph.server == "neo4j":
            _refuse_non_reads(session, query, params)
        tx = session.begin_transaction(timeout=timeout_s)
        try:
            result = tx.run(query, params)
            for record in result:
                if len(records) == max_rows:
                    records.truncated = True
                    break
                records.append(_plain(record.data()))
            counters = result.consume().counters
        except Neo4jError as exc:
            raise _user_error(exc, timeout_s) from exc
        finally:
            tx.rollback() if not tx.closed() else None
    if counters.contains_updates or counters.contains_system_updates:
        raise ReadOnlyViolation("query: writes are refused in a read-only transaction (rolled back)")
    return records


def _refuse_non_reads(session: neo4j.Session, query: str, params: dict[str, Any]) -> None:
    """Neo4j's own account of the statement (EXPLAIN plans it without running it)."""
    try:
        summary = session.run("EXPLAIN " + query, params).consume()
    except Neo4jError as exc:
        raise _user_error(exc, 0.0) from exc
    if summary.query_type != "r":
        kind = {"w": "a write", "rw": "a read-write", "s": "a schema"}.get(summary.query_type or "", "not a read")
        raise ReadOnlyViolation(f"query: refused: Neo4j plans it as {kind} statement")


def _user_error(exc: Neo4jError, timeout_s: float) -> Exception:
    code = exc.code or ""
    if "TransactionTimedOut" in code or "Transaction.Terminated" in code:
        return InvalidInput("query", f"stopped after the {timeout_s:g} s limit (KG_CYPHER_TIMEOUT_S)")
    if "write" in (exc.message or "").lower() or "AccessMode" in code or "ForbiddenOnReadOnly" in code:
        return ReadOnlyViolation("query: writes are refused in a read-only transaction")
    if isinstance(exc, ClientError):
        return InvalidInput("query", f"rejected by the server: {code}")
    return InvalidInput("query", f"failed on the server: {code}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "items") and hasattr(value, "element_id"):  # Node / Relationship
        return dict(value.items())
    return value


def format_table(records: list[dict]) -> str:
    """A plain text table; one column per returned key."""
    if not records:
        return "(no rows)"
    columns = list(records[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = " | ".join(c.ljust(w) for c, w in zip(columns, widths))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([line, rule, *body, f"({len(records)} rows)"])


def _cell(value: Any) -> str:
    return "null" if value is None else str(value)
