"""Named Cypher statements, loaded once from ``cypher/**/*.cypher``.

Each file holds one statement; line 1 is ``// <name>: <what it does>`` and the
name equals the file stem.  Values only ever travel as ``$parameters``; nothing
here formats user input into a statement.  Duplicate names are refused, so a
statement has exactly one home.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

CYPHER_DIR = Path(__file__).resolve().parent.parent / "cypher"
_HEADER = re.compile(r"^//\s*([a-z][a-z0-9_]*)\s*:\s*(.+)$")


class Statement(str):
    """A statement's text that also knows its name (for errors and logs)."""

    name: str
    area: str

    def __new__(cls, text: str, name: str, area: str) -> "Statement":
        obj = super().__new__(cls, text)
        obj.name = name
        obj.area = area
        return obj


@lru_cache(maxsize=1)
def load_all(root: Path = CYPHER_DIR) -> dict[str, Statement]:
    """Every statement by name; raises on a missing header or a duplicate name."""
    statements: dict[str, Statement] = {}
    for path in sorted(root.rglob("*.cypher")):
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        match = _HEADER.match(first)
        if not match or match.group(1) != path.stem:
            raise ValueError(f"{path}: line 1 must be '// {path.stem}: <description>'")
        name = match.group(1)
        if name in statements:
            raise ValueError(f"{path}: duplicate statement name {name!r}")
        statements[name] = Statement(text, name, path.parent.name)
    return statements


def q(name: str) -> Statement:
    """The statement called ``name``."""
    try:
        return load_all()[name]
    except KeyError:
        raise KeyError(f"no Cypher statement named {name!r} under {CYPHER_DIR}") from None


def in_area(area: str) -> list[Statement]:
    """All statements of one folder (e.g. ``schema``), in name order."""
    return [s for s in load_all().values() if s.area == area]
