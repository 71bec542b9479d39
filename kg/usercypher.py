"""Users' own Cypher, run read-only with ``$t``, ``$known_at`` and ``$ns`` bound.

The query runs in an explicit READ-mode transaction that is always rolled back,
never committed, so even a server that does not enforce read mode keeps
nothing; if the server reports that the query changed anything, it is refused.
"""

from __future__ import annotations

from typing import Any

from neo4j import READ_ACCESS
from neo4j.exceptions import Neo4jError

from kg.errors import InvalidInput, ReadOnlyViolation
from kg.graph import Graph


def run_read_only(graph: Graph, query: str, **params: Any) -> list[dict]:
    """Records of ``query`` as plain dicts; raises ReadOnlyViolation on a write."""
    if not query.strip():
        raise InvalidInput("query", "must not be empty")
    with graph.driver.session(database=graph.database, default_access_mode=READ_ACCESS) as session:
        tx = session.begin_transaction()
        try:
            result = tx.run(query, params)
            records = [_plain(record.data()) for record in result]
            counters = result.consume().counters
        except Neo4jError as exc:
            if "write" in (exc.message or "").lower() or "read" in (exc.code or "").lower():
                raise ReadOnlyViolation("query: writes are refused in a read-only transaction") from exc
            raise InvalidInput("query", f"rejected by the server: {exc.code}") from exc
        finally:
            tx.rollback() if not tx.closed() else None
    if counters.contains_updates or counters.contains_system_updates:
        raise ReadOnlyViolation("query: writes are refused in a read-only transaction (rolled back)")
    return records


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
