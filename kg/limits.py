"""What one request may hold: the limits the README promises a client, in one place.

They are checked at the boundary (``kg.models``), before anything is stored, and
the read side applies the same attribute limits, so whatever was accepted can be
read back and answered as JSON.  Nesting is bounded far below Python's recursion
limit: at a depth near 1,000 a write used to be accepted and every later read of
its subject failed.

>>> deeper_than({"a": [{"b": 1}]}, 3), deeper_than({"a": [{"b": 1}]}, 2)
(False, True)
>>> read_attributes('{"k":"v"}'), read_attributes("[" * 40 + "]" * 40) is None
({'k': 'v'}, True)
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_ID_CHARS = 512  # an edge id, src, dst, relation, node name
MAX_NAMESPACE_CHARS = 128
MAX_ATTRIBUTES_BYTES = 65_536  # an edge's attributes as canonical UTF-8 JSON
MAX_ATTRIBUTES_DEPTH = 32  # objects and arrays inside one another, the attributes object included
MAX_QUESTIONS = 1_000  # query_at_many: questions answered in one read transaction
MAX_INVALIDATIONS = 10_000  # invalidate_many: invalidations written in one transaction
MAX_CONTRADICTS = 1_000  # contradict, and an ingest record's contradicts: the edges one new fact ends
MAX_HOPS = 3  # neighbourhood: steps out of src (attend's graph read has the same bound)
MAX_NEIGHBOURHOOD_EDGES = 1_024  # neighbourhood: max_edges, the edges one walk may answer
NEIGHBOURHOOD_EDGES = 256  # neighbourhood: max_edges when a request leaves it out
MAX_NEIGHBOURHOODS = 100  # neighbourhood_many: walks in one read (at most 102,400 edges answered)

# A stated time must lie strictly inside Bolt's signed 64-bit range: the largest value is the
# open end of an interval (kg.interval_index.OPEN), so a fact cannot start or end there.
FIRST_TIME = -(2**63) + 1
LAST_TIME = 2**63 - 2

# C0 and C1 control characters (NUL, tab, newline, ...) and lone surrogates (not encodable as
# UTF-8, so not storable): never part of a name a user types or a log line should carry.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name (id, namespace, ...), or None when it can."""
    if not value.strip():
        return "must not be blank"
    if _UNPRINTABLE.search(value):
        return "must not contain control characters (NUL, tab, newline, ...) or lone surrogates"
    return None


def deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON-like ``value`` nests objects/arrays more than ``limit`` deep.

    Iterative, so a value nested thousands deep is measured without recursion.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False


def read_attributes(text: str) -> dict | None:
    """Stored attributes text as an object; None for text beyond the limits.

    Only a release before these limits could have stored such text; reading it as None
    keeps the rest of the answer (and the edge's subject) readable.
    """
    if len(text) > MAX_ATTRIBUTES_BYTES:  # characters <= bytes: a quick first check
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or (may_nest_deeper(text) and deeper_than(value, MAX_ATTRIBUTES_DEPTH)):
        return None
    return value


def may_nest_deeper(text: str, limit: int = MAX_ATTRIBUTES_DEPTH) -> bool:
    """False when JSON ``text`` has too few brackets to nest beyond ``limit`` (the usual case:
    then the walk is skipped; brackets inside strings only make the answer more cautious)."""
    return text.count("{") + text.count("[") > limit
