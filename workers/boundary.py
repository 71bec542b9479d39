"""EWC anchor at a detected boundary: when an applied ``record_outcome`` reports that the router's
input-shift monitor fired (:mod:`learn.shift`), the drain queues an ``anchor_router`` for that
namespace on the outcomes up to that event, instead of waiting for beat's ``consolidate``.

Exactly once per boundary: the event id is ``anchor-s<seq>-b<boundaries>`` (the seq of the
outcome that fired and the router's boundary count after it), and the queue refuses a duplicate
id. The anchor is queued *before* the batch that fired is committed, so a worker that dies in
between leaves no boundary without its anchor: the retried batch fires on the same event again and
its anchor is refused as a duplicate. It is queued without a trigger, behind the batch, so the
drain that holds the lock applies it next (a commit that lost its compare-and-set to another
drain loses nothing: that drain applied the same events). On with ``KG_ANCHOR_ON_BOUNDARY=1``;
off by default, because on the forgetting protocol it cost the new topic 3-7% of its APGR and
kept nothing of the old one (``bench/README-learn.md``). The beat's clock anchors either way.

>>> rows = [{"seq": s, "embedding": [0.0, 1.0], "target": "a", "quality": 1.0} for s in (3, 5, 9)]
>>> [r["seq"] for r in samples_before(rows, 5, 2)]
[3, 5]
"""

from __future__ import annotations

import json
from typing import Any

from learn.limits import ANCHOR_MAX
from workers.events import Event, event_bytes, unpack_vectors
from workers.samples import router_samples

VERB = "record_outcome"


def samples_before(rows: list[dict[str, Any]], seq: int, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` outcome rows whose seq is at most ``seq``, oldest first."""
    return [r for r in rows if r["seq"] <= seq][-limit:]


def queue_anchors(store: Any, ns: str, kind: str, core: Any, events: list[Event],
                  results: list[dict[str, Any]], outcomes: list[str]) -> list[str]:
    """Queue one ``anchor_router`` per boundary reported in ``results``; the ids queued.

    ``outcomes`` are the batch's outcome rows (not committed yet), ``core`` the router after it.
    """
    if kind != "router" or not store.ws.anchor_on_boundary:  # every drain step passes here: off costs nothing
        return []
    fired = [(e, r) for e, r in zip(events, results)
             if r.get("verb") == VERB and r.get("ok") and r["data"].get("boundary")]
    if not fired:
        return []
    rows = store.outcomes(ns, ANCHOR_MAX) + [unpack_vectors(json.loads(o)) for o in outcomes]
    queued = []
    for event, result in fired:
        samples = router_samples(samples_before(rows, event.seq, ANCHOR_MAX), core.in_dim, set(core.targets))
        if not samples:
            continue
        eid = f"anchor-s{event.seq}-b{result['data']['boundaries']}"
        out = store.enqueue(ns, kind, eid, event_bytes(eid, "anchor_router", {"samples": samples}, False),
                            trigger=False)
        if out.status == "accepted":
            queued.append(eid)
    return queued
