"""Applying queued events to a learning core: pure functions of (table, core, events), no IO.

A drain applies a micro-batch with :func:`apply_batch`; because events are applied one after the
other in arrival order, a batch gives exactly the state that applying them one by one gives
(:func:`replay` is that one-by-one reference). An event that fails (a bad value the caller's check
could not see, e.g. the core was re-initialised meanwhile) gets an ``ok: false`` result and changes
nothing: the cores check every input before touching their state.

>>> from workers.verbs import UPDATES
>>> ev = lambda seq, verb, body: Event(seq, f"e{seq}", verb, body)
>>> batch = apply_batch(UPDATES, "ewc", None, 0, [ev(1, "record_loss", {"loss": 1.0}),
...                                      ev(2, "record_loss", {"loss": "x"})])
>>> [r["ok"] for r in batch.results], batch.updates, batch.core.losses_seen
([True, False], 1, 1)
>>> batch.results[1]["error"]
'loss: expected a number, got str'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from learn import EWC, LearnInputError
from workers.events import Event, pack_vectors

@dataclass
class Batch:
    """The outcome of applying events: the core, results in order, and what the commit needs."""

    core: Any
    updates: int
    results: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False
    init: bool = False
    outcomes: list[str] = field(default_factory=list)


def new_core(kind: str) -> Any:
    """The state a core starts from without an explicit init (only EWC has one)."""
    if kind == "ewc":
        return EWC()
    return None


class Update(Protocol):
    """What applying a verb needs to know (an entry of :data:`workers.verbs.UPDATES`)."""

    core: str
    apply: Callable[[Any, dict], tuple[Any, dict]]
    init: bool
    field_names: Mapping[str, str]
    keeps_outcome: bool


def apply_batch(table: Mapping[str, Update], kind: str, core: Any, updates: int, events: list[Event]) -> Batch:
    """Apply ``events`` in order to ``core`` (mutated in place; None when never initialised),
    each by its verb's entry in ``table``."""
    batch = Batch(core, updates)
    for event in events:
        batch.results.append(_apply_one(table, kind, batch, event))
    return batch


def _apply_one(table: Mapping[str, Update], kind: str, batch: Batch, event: Event) -> dict[str, Any]:
    verb = event.verb
    result: dict[str, Any] = {"verb": verb, "seq": event.seq, "event_id": event.id}
    spec = table.get(verb)
    if spec is None or spec.core != kind:
        return result | {"ok": False, "error": "verb: not an update of this core"}
    core = batch.core
    if core is None and not spec.init:
        core = new_core(kind)
        if core is None:
            return result | {"ok": False, "error": f"namespace: has no {kind} state; initialise it first"}
    try:
        core, data = spec.apply(core, event.body)
    except LearnInputError as exc:
        name = spec.field_names.get(exc.field, exc.field)
        return result | {"ok": False, "error": f"{name}: {exc.reason}"}
    except (KeyError, TypeError) as exc:  # a malformed event (never from dispatch, which validates)
        return result | {"ok": False, "error": f"body: malformed event ({type(exc).__name__})"}
    batch.core = core
    batch.changed = True
    if spec.init:
        batch.init = True
        batch.updates = 0
    else:
        batch.updates += 1
    if spec.keeps_outcome and event.body.get("embedding") is not None:
        b = event.body
        batch.outcomes.append(json.dumps(pack_vectors(
            {"seq": event.seq, "embedding": b["embedding"], "target": b["target"],
             "quality": b["quality"], "estimated_tokens": b.get("estimated_tokens")}),
            separators=(",", ":")))
    return result | {"ok": True, "data": data, "updates": batch.updates}


def replay(table: Mapping[str, Update], kind: str, events: list[Event], core: Any = None,
           updates: int = 0) -> Batch:
    """The reference: apply ``events`` one at a time (what a batch must equal)."""
    batch = Batch(core, updates)
    for event in events:
        step = apply_batch(table, kind, batch.core, batch.updates, [event])
        batch.core, batch.updates = step.core, step.updates
        batch.results += step.results
        batch.changed |= step.changed
        batch.init |= step.init
        batch.outcomes += step.outcomes
    return batch
