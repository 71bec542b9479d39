"""Breadth-first neighbourhoods of many questions, walked hop by hop together.

Each question (src, hops, t, known_at) is a walk out of ``src`` along the edges that hold at
``t`` (as believed now, or at ``known_at``).  The walks take their steps together: a step asks
one ``query_at`` question per frontier subject of every walk still going, all through one
``answers`` call (``EdgeStore._answers``: a few statements, whatever their number), so a call
costs a few reads per hop instead of a few per hop and question.  A walk keeps, at each hop,
the first edges by id that fit in ``max_edges``; the next frontier is their new endpoints.

>>> from kg.temporal import Version
>>> def v(edge_id, src, dst):
...     return Version(edge_id, 1, src, dst, "knows", 1.0, "{}", 0, 10, 0, 2**63 - 1, 0, "", None)
>>> graph = {"a": [v("e1", "a", "b"), v("e2", "a", "c")], "b": [v("e3", "b", "d")]}
>>> ask = lambda asked: [graph.get(src, []) for src, t, known_at in asked]
>>> [[r["edge_id"] for r in rows] for rows in walk([("a", 2, 5, None), ("a", 2, 5, None)], 2, ask)]
[['e1', 'e2'], ['e1', 'e2']]
>>> [r["edge_id"] for r in walk([("a", 3, 5, None)], 256, ask)[0]]
['e1', 'e2', 'e3']
"""

from __future__ import annotations

from typing import Callable

from kg.temporal import Version

Question = tuple[str, int, int, "int | None"]
Answers = Callable[[list[tuple[str, int, "int | None"]]], list[list[Version]]]


class _Walk:
    """One question's walk: what it has seen, its frontier and the edges it kept."""

    def __init__(self, src: str, hops: int, t: int, known_at: int | None) -> None:
        self.t, self.known_at, self.hops_left = t, known_at, hops
        self.seen, self.frontier, self.edges = {src}, [src], []

    def going(self, max_edges: int) -> bool:
        return bool(self.frontier) and self.hops_left > 0 and len(self.edges) < max_edges

    def step(self, found: list[Version], max_edges: int) -> None:
        """Keep the first of ``found`` by id that fit; their new endpoints are the next frontier."""
        frontier = []
        for version in sorted(found, key=lambda v: v.edge_id)[: max_edges - len(self.edges)]:
            self.edges.append({"src": version.src, "dst": version.dst, "relation": version.relation,
                               "weight": version.weight, "valid_from": version.valid_from,
                               "edge_id": version.edge_id})
            if version.dst not in self.seen:
                self.seen.add(version.dst)
                frontier.append(version.dst)
        self.frontier = sorted(frontier)
        self.hops_left -= 1


def walk(questions: list[Question], max_edges: int, answers: Answers) -> list[list[dict]]:
    """The neighbourhood of each question, in order (see the module docstring)."""
    walks = [_Walk(*question) for question in questions]
    while going := [w for w in walks if w.going(max_edges)]:
        found = iter(answers([(src, w.t, w.known_at) for w in going for src in w.frontier]))
        for w in going:
            w.step([version for _ in w.frontier for version in next(found)], max_edges)
    return [w.edges for w in walks]
