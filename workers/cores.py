"""Applying queued events to a learning core: pure functions of (core, events), no IO.

A drain applies a micro-batch with :func:`apply_batch`; because events are applied one after the
other in arrival order, a batch gives exactly the state that applying them one by one gives
(:func:`replay` is that one-by-one reference). An event that fails (a bad value the caller's check
could not see, e.g. the core was re-initialised meanwhile) gets an ``ok: false`` result and changes
nothing: the cores check every input before touching their state.

>>> ev = lambda seq, verb, body: Event(seq, f"e{seq}", verb, body)
>>> batch = apply_batch("ewc", None, 0, [ev(1, "record_loss", {"loss": 1.0}),
...                                      ev(2, "record_loss", {"loss": "x"})])
>>> [r["ok"] for r in batch.results], batch.updates, batch.core.losses_seen
([True, False], 1, 1)
>>> batch.results[1]["error"]
'loss: expected a number, got str'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from learn import EWC, FastGRNNRouter, GraphAttention, LearnInputError, MicroLoRA
from learn.limits import ANCHOR_MAX, REPLAY_MAX, TRAIN_MAX  # noqa: F401  (beat's event sizes, here since before)
from workers.events import Event, pack_vectors

CORE_OF_VERB: dict[str, str] = {
    "init_instant": "instant",
    "feedback": "instant",
    "reset_adapter": "instant",
    "record_loss": "ewc",
    "consolidate": "ewc",
    "init_router": "router",
    "record_outcome": "router",
    "train_router": "router",
    "anchor_router": "router",
    "init_attention": "attention",
}
INIT_VERBS = {"init_instant": "instant", "init_router": "router", "init_attention": "attention"}

# learn names some arguments differently from the request bodies
FIELD_NAMES: dict[str, dict[str, str]] = {
    "feedback": {"target": "model", "quality": "payload.quality"},
}


@dataclass
class Batch:
    """The outcome of applying events: the core, results in order, and what the commit needs."""

    core: Any
    updates: int
    results: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False
    init: bool = False
    outcomes: list[str] = field(default_factory=list)


def _init_instant(core: Any, b: dict) -> tuple[Any, dict]:
    c = MicroLoRA(targets=b["targets"], in_dim=b["in_dim"], lr_min=b.get("lr_min", 1e-3),
                  seed=b.get("seed", 0))
    return c, {"targets": c.targets, "in_dim": c.in_dim, "lr": c.lr}


def _feedback(core: MicroLoRA, b: dict) -> tuple[Any, dict]:
    core.learn(b["embedding"], b["model"], b["payload"]["quality"])
    return core, {"updates": core.updates, "lr": core.lr}


def _reset(core: MicroLoRA, b: dict) -> tuple[Any, dict]:
    core.reset()
    return core, {"lr": core.lr}


def _record_loss(core: EWC, b: dict) -> tuple[Any, dict]:
    fired = core.record_loss(b["loss"])
    return core, {"boundary": fired, "boundaries": core.boundaries, "losses_seen": core.losses_seen}


def _consolidate(core: EWC, b: dict) -> tuple[Any, dict]:
    core.consolidate(b["param_id"], b["params"], b["grads"])
    return core, {"fisher_keys": core.fisher_keys, "param_id": b["param_id"]}


def _init_router(core: Any, b: dict) -> tuple[Any, dict]:
    c = FastGRNNRouter(in_dim=b["in_dim"], targets=b["targets"], trained=b.get("trained", False),
                       epsilon=b.get("epsilon", 0.1), costs=b.get("costs"),
                       cost_weight=b.get("cost_weight", 0.0), seed=b.get("seed", 0))
    return c, {"targets": c.targets, "in_dim": c.in_dim, "algo": c.mode}


def _record_outcome(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    shift = core.record_outcome(b["target"], b["quality"], embedding=b.get("embedding"),
                                estimated_tokens=b.get("estimated_tokens"),
                                temperature=b.get("temperature"), top_p=b.get("top_p"))
    return core, {"target": b["target"], "ema": core.outcome_ema[b["target"]],
                  "outcomes": core.outcome_counts[b["target"]], "algo": core.mode,
                  "trained": b.get("embedding") is not None,
                  "boundary": shift, "boundaries": core.boundaries}


def _samples(b: dict) -> tuple[list, list, list, list | None]:
    rows = b["samples"]
    if not isinstance(rows, list) or not rows:
        raise LearnInputError("samples", "expected a non-empty list of outcomes")
    tokens = [s.get("estimated_tokens") for s in rows]
    return ([s["embedding"] for s in rows], [s["target"] for s in rows],
            [s["quality"] for s in rows], None if any(t is None for t in tokens) else tokens)


def _train_router(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    xs, ts, qs, tokens = _samples(b)
    loss = core.train_batch(xs, ts, qs, epochs=b.get("epochs", 1), estimated_tokens=tokens)
    return core, {"loss": loss, "samples": len(xs), "algo": core.mode}


def _anchor_router(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    """EWC anchor of the router: Fisher = mean squared gradient over recent outcomes."""
    xs, ts, qs, _ = _samples(b)
    fisher: dict[str, np.ndarray] = {}
    for x, t, q in zip(xs, ts, qs):
        for name, g in core.grads(x, t, q).items():
            acc = fisher.get(name)
            fisher[name] = g * g if acc is None else acc + g * g
    core.anchor({name: f / len(xs) for name, f in fisher.items()})
    return core, {"anchored": sorted(fisher), "samples": len(xs)}


def _init_attention(core: Any, b: dict) -> tuple[Any, dict]:
    c = GraphAttention(dim=b["dim"], heads=b.get("heads", 8), head_dim=b.get("head_dim"),
                       seed=b.get("seed", 0), relations=b.get("relations", []))
    return c, {"dim": c.dim, "heads": c.heads, "head_dim": c.head_dim}


HANDLERS: dict[str, Callable[[Any, dict], tuple[Any, dict]]] = {
    "init_instant": _init_instant,
    "feedback": _feedback,
    "reset_adapter": _reset,
    "record_loss": _record_loss,
    "consolidate": _consolidate,
    "init_router": _init_router,
    "record_outcome": _record_outcome,
    "train_router": _train_router,
    "anchor_router": _anchor_router,
    "init_attention": _init_attention,
}


def new_core(kind: str) -> Any:
    """The state a core starts from without an explicit init (only EWC has one)."""
    if kind == "ewc":
        return EWC()
    return None


def apply_batch(kind: str, core: Any, updates: int, events: list[Event]) -> Batch:
    """Apply ``events`` in order to ``core`` (mutated in place; None when never initialised)."""
    batch = Batch(core, updates)
    for event in events:
        batch.results.append(_apply_one(kind, batch, event))
    return batch


def _apply_one(kind: str, batch: Batch, event: Event) -> dict[str, Any]:
    verb = event.verb
    result: dict[str, Any] = {"verb": verb, "seq": event.seq, "event_id": event.id}
    handler = HANDLERS.get(verb)
    if handler is None or CORE_OF_VERB[verb] != kind:
        return result | {"ok": False, "error": "verb: not an update of this core"}
    core = batch.core
    if core is None and verb not in INIT_VERBS:
        core = new_core(kind)
        if core is None:
            return result | {"ok": False, "error": f"namespace: has no {kind} state; initialise it first"}
    try:
        core, data = handler(core, event.body)
    except LearnInputError as exc:
        name = FIELD_NAMES.get(verb, {}).get(exc.field, exc.field)
        return result | {"ok": False, "error": f"{name}: {exc.reason}"}
    except (KeyError, TypeError) as exc:  # a malformed event (never from dispatch, which validates)
        return result | {"ok": False, "error": f"body: malformed event ({type(exc).__name__})"}
    batch.core = core
    batch.changed = True
    if verb in INIT_VERBS:
        batch.init = True
        batch.updates = 0
    else:
        batch.updates += 1
    if verb == "record_outcome" and event.body.get("embedding") is not None:
        b = event.body
        batch.outcomes.append(json.dumps(pack_vectors(
            {"seq": event.seq, "embedding": b["embedding"], "target": b["target"],
             "quality": b["quality"], "estimated_tokens": b.get("estimated_tokens")}),
            separators=(",", ":")))
    return result | {"ok": True, "data": data, "updates": batch.updates}


def replay(kind: str, events: list[Event], core: Any = None, updates: int = 0) -> Batch:
    """The reference: apply ``events`` one at a time (what a batch must equal)."""
    batch = Batch(core, updates)
    for event in events:
        step = apply_batch(kind, batch.core, batch.updates, [event])
        batch.core, batch.updates = step.core, step.updates
        batch.results += step.results
        batch.changed |= step.changed
        batch.init |= step.init
        batch.outcomes += step.outcomes
    return batch
