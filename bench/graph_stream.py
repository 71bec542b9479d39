"""A generated stream of edges with hub subjects, for the ingest and query benchmarks.

Deterministic for a seed.  Ordinary subjects get a handful of ``knows`` edges;
hub subjects get ``works_at`` edges one after another (a functional relation, so
each one contradicts the previous: a hub accumulates thousands of historical
versions) plus short-lived ``knows`` edges, so at any time only a few of a hub's
1,500 edges are valid.  ``created_at`` grows along the stream (a minute per
edge; less on streams so long that a minute each would pass 2038, see :func:`learned_step`), as
when facts are learned over time, so ``known_at`` has history to see.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

YEAR_MS = 365 * 86_400_000
START = -20 * YEAR_MS  # 1950
LEARNED_FROM = 50 * YEAR_MS  # about 2020
MINUTE_MS = 60_000
HUB_WORKS_AT = 1_200
HUB_KNOWS = 300
TIMESTAMP_END_MS = 2_147_483_647_000  # 2038-01-19: where MariaDB 10.11's system time ends


def learned_step(n_edges: int) -> int:
    """Milliseconds between two edges' ``created_at``: a minute, unless ``2 * n_edges`` minutes
    (the stream and as long again for what is learned after it) would pass the end of MariaDB's
    ``TIMESTAMP`` (bench.peer_mariadb); then whole seconds that fit (10M edges: 28 s).

    >>> learned_step(1_000_000), learned_step(10_000_000)
    (60000, 28000)
    """
    fits = (TIMESTAMP_END_MS - LEARNED_FROM) // (2 * max(1, n_edges))
    return min(MINUTE_MS, fits // 1000 * 1000)


def stream(n_edges: int, hubs: int = 5, seed: int = 7) -> Iterator[dict]:
    rng = random.Random(seed)
    hub_edges = hubs * (HUB_WORKS_AT + HUB_KNOWS)
    ordinary = max(0, n_edges - hub_edges)
    hub_slots = sorted(rng.sample(range(n_edges), min(hub_edges, n_edges)))
    hub_plan = [(f"hub{h}", "works_at", k) for h in range(hubs) for k in range(HUB_WORKS_AT)]
    hub_plan += [(f"hub{h}", "knows", k) for h in range(hubs) for k in range(HUB_KNOWS)]
    hub_plan.sort(key=lambda item: (item[2], item[0], item[1]))  # jobs in time order
    hub_iter = iter(hub_plan)
    next_hub = iter(hub_slots)
    slot = next(next_hub, None)
    subjects = max(1, ordinary // 5)
    step = learned_step(n_edges)
    for i in range(n_edges):
        if i == slot:
            src, relation, k = next(hub_iter)
            slot = next(next_hub, None)
            learned = LEARNED_FROM + i * step
            if relation == "works_at":  # a new job every ~3 weeks, each contradicting the last
                yield {"id": f"{src}-job{k}", "src": src, "dst": f"org{rng.randrange(5_000)}",
                       "relation": "works_at", "valid_at": START + k * 21 * 86_400_000,
                       "created_at": learned}
            else:
                valid_at = START + rng.randrange(70 * 365) * 86_400_000
                yield {"id": f"{src}-knows{k}", "src": src, "dst": f"p{rng.randrange(subjects)}",
                       "relation": "knows", "valid_at": valid_at,
                       "invalid_at": valid_at + rng.randrange(30, 365) * 86_400_000, "created_at": learned}
            continue
        valid_at = START + rng.randrange(70 * 365) * 86_400_000
        edge = {"id": f"e{i}", "src": f"p{rng.randrange(subjects)}", "dst": f"p{rng.randrange(subjects)}",
                "relation": "knows", "valid_at": valid_at, "created_at": LEARNED_FROM + i * step}
        if rng.random() < 0.4:
            edge["invalid_at"] = valid_at + rng.randrange(1, 20 * 365) * 86_400_000
        yield edge


def job_updates(subjects: int = 2_000, rounds: int = 10, seed: int = 7) -> Iterator[dict]:
    """Round after round, every subject takes a new job (``works_at``, functional), in time order.

    A batch of one round touches thousands of subjects, each of whose new fact
    cuts its previous one: the pipeline of periodic updates to many entities.
    """
    rng = random.Random(seed)
    for k in range(rounds):
        for i in range(subjects):
            yield {"id": f"w{i}-job{k}", "src": f"w{i}", "dst": f"org{rng.randrange(5_000)}",
                   "relation": "works_at", "valid_at": START + (k * 365 + rng.randrange(300)) * 86_400_000,
                   "created_at": LEARNED_FROM + (k * subjects + i) * MINUTE_MS}


def write_jsonl(path: Path, n_edges: int, hubs: int = 5, seed: int = 7) -> Path:
    return write_edges(path, stream(n_edges, hubs, seed))


def write_edges(path: Path, edges: Iterator[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for edge in edges:
            fh.write(json.dumps(edge) + "\n")
    return path
