"""The learning reads: answers computed from a state's current core, changing nothing.

Each ``read(cur, body)`` gets the current state (``cur``: the decoded core, its version and the
checksum-derived seed; None when the namespace has none) and the validated body; the caller
(:meth:`workers.service.Learning.read`) makes sure ``cur`` is no older than the last update whose
result was returned.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from learn import Draw
from workers import checks


def vector(values: list[float]) -> np.ndarray:
    """A validated list of floats as float64 (packing through struct is ~2x faster than
    ``np.asarray`` on a list; the values are the same)."""
    return np.frombuffer(struct.pack(f"<{len(values)}d", *values), dtype=np.float64)


def apply_adapter(cur: Any, body: Any) -> dict:
    core = checks.needs(cur, "instant", "init_instant").core
    checks.dim(body.embedding, "embedding", core.in_dim, checks.ADAPTER_DIM)
    checks.dim(body.logits, "logits", len(core.targets))
    with checks.learn_errors():
        x = vector(body.embedding)
        logits = core.apply(x, body.logits)
        out = {"logits": logits.tolist(), "targets": list(core.targets), "version": cur.version}
        if body.parts:
            base, micro = core.apply_parts(x)
            out |= {"base": base.tolist(), "micro": micro.tolist(), "consolidations": core.consolidations}
    return out


def route(cur: Any, body: Any) -> dict:
    router = checks.needs(cur, "router", "init_router").core
    checks.dim(body.embedding, "embedding", router.in_dim, checks.ROUTER_DIM)
    checks.dim(body.adapter_logits, "adapter_logits", len(router.targets))
    with checks.learn_errors():
        out = route_read(cur, vector(body.embedding), body.estimated_tokens, body.adapter_logits, body.explore)
    out["version"] = cur.version
    return out


def route_read(cur: Any, embedding: list[float] | np.ndarray, estimated_tokens: int | None = None,
               adapter_logits: list[float] | None = None, explore: bool = True) -> dict:
    """Route on the current router (a read: ``FastGRNNRouter.route`` changes nothing).

    Equal requests on equal state must answer alike (after a restart too), so the exploration
    draw comes from the state's checksum and the request: the share of explored requests is
    still ``epsilon``. ``explore=False`` routes on what the router has learnt alone (no draw, no
    epsilon, and under a Bayesian policy the posterior mean: no UCB bonus either).
    """
    core = cur.core
    x = np.asarray(embedding, dtype=np.float64)
    draw = None
    if explore and core.needs_draw:  # epsilon exploration, or Thompson sampling's noise
        h = cur.seed_hash.copy()
        h.update(x.tobytes())
        h.update(repr((estimated_tokens, adapter_logits)).encode())
        draw = _draw(h.digest())
    return core.route(x, estimated_tokens=estimated_tokens, adapter_logits=adapter_logits, draw=draw,
                      explore=explore)


def _draw(digest: bytes) -> Draw:
    """The route's draw (explore?, which target) taken from a digest: as random as the digest,
    and ~40x cheaper than seeding a numpy generator per request."""
    return Draw(int.from_bytes(digest[:8], "little") / 2.0**64, int.from_bytes(digest[8:16], "little"))


def ewc_penalty(cur: Any, body: Any) -> dict:
    if cur is None:
        return {"penalty": 0.0, "version": 0}
    with checks.learn_errors():
        penalty = cur.core.penalty(body.param_id, body.params)
    return {"penalty": penalty, "version": cur.version}


def find_patterns(cur: Any, body: Any) -> dict:
    """The ``k`` patterns nearest an embedding, with their statistics."""
    bank = checks.needs(cur, "patterns", "init_patterns").core
    checks.dim(body.embedding, "embedding", bank.dim, checks.PATTERNS_DIM)
    with checks.learn_errors():
        found = bank.find(vector(body.embedding), body.k)
    return {"patterns": found, "buffered": bank.buffered, "version": cur.version}
