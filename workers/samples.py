"""Router training samples from recorded outcomes: the one filter that ``train_router`` (the
verb) and beat's router jobs (:mod:`workers.tasks`) both apply.

>>> rows = [{"embedding": [0.1, 0.2], "target": "a", "quality": 1.0, "estimated_tokens": None},
...         {"embedding": [0.3], "target": "a", "quality": 0.5},
...         {"embedding": [0.1, 0.4], "target": "z", "quality": 0.5},
...         {"embedding": [0.5, 0.6], "target": "b", "quality": 0.0, "estimated_tokens": 12}]
>>> router_samples(rows, in_dim=2, targets=("a", "b"))
[{'embedding': [0.1, 0.2], 'target': 'a', 'quality': 1.0}, {'embedding': [0.5, 0.6], 'target': 'b', 'quality': 0.0, 'estimated_tokens': 12}]
"""

from __future__ import annotations

from typing import Any, Collection, Iterable

FIELDS = ("embedding", "target", "quality", "estimated_tokens")


def router_samples(rows: Iterable[dict[str, Any]], in_dim: int, targets: Collection[str]) -> list[dict[str, Any]]:
    """The outcomes that fit a router (embedding of ``in_dim`` values, a known target), as
    ``train_router`` samples: the fields it reads, those that are set."""
    return [{k: o[k] for k in FIELDS if o.get(k) is not None}
            for o in rows if len(o["embedding"]) == in_dim and o["target"] in targets]
