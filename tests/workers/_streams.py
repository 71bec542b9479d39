"""Event streams for the worker tests and the reference they must equal (one-by-one replay)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from service.root import VERBS
from kg.models import parse
from learn import to_bytes
from workers.cores import replay
from workers.verbs import CORE_OF_VERB, UPDATES
from workers.events import Event, event_bytes
from workers.service import Current
from workers.store_keys import StateKeys
from workers.store_record import Record
from workers.handlers import event_body
from workers.reads import route_read
from workers.weight_store import WeightStore

DIM = 16
TARGETS = ["small", "medium", "large"]


def init_requests(ns: str) -> list[dict]:
    return [
        {"verb": "init_instant", "body": {"namespace": ns, "targets": TARGETS, "in_dim": DIM}},
        {"verb": "init_router", "body": {"namespace": ns, "targets": TARGETS, "in_dim": DIM, "epsilon": 0.1}},
    ]


def every_core_requests(ns: str) -> list[dict]:
    """Small states of every core in ``ns``, and one consolidated EWC parameter."""
    return [
        {"verb": "init_instant", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4}},
        {"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4}},
        {"verb": "init_attention", "body": {"namespace": ns, "dim": 8}},
        {"verb": "init_patterns", "body": {"namespace": ns, "dim": 4, "targets": ["a", "b"]}},
        {"verb": "consolidate", "body": {"namespace": ns, "param_id": "w", "params": [1.0, 2.0],
                                         "grads": [0.5, 0.5]}},
    ]


def update_requests(ns: str, n: int, seed: int, prefix: str = "e") -> list[dict]:
    """``n`` feedback / loss / consolidate / outcome requests with client event ids."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        eid = f"{prefix}{i}"
        kind = i % 10
        if kind < 4:
            body = {"embedding": rng.standard_normal(DIM).tolist(), "model": TARGETS[int(rng.integers(3))],
                    "payload": {"quality": float(rng.random())}, "now_ms": 1_700_000_000_000 + i}
            verb = "feedback"
        elif kind < 6:
            verb, body = "record_loss", {"loss": float(rng.random() * (8 if i % 37 == 0 else 1))}
        elif kind == 6:
            verb = "consolidate"
            body = {"param_id": f"layer{i % 3}", "params": rng.standard_normal(8).tolist(),
                    "grads": rng.standard_normal(8).tolist()}
        else:
            verb = "record_outcome"
            body = {"target": TARGETS[int(rng.integers(3))], "quality": float(rng.random()),
                    "embedding": rng.standard_normal(DIM).tolist(),
                    "estimated_tokens": int(rng.integers(0, 70_000))}
        out.append({"verb": verb, "body": dict(body, namespace=ns, event_id=eid)})
    return out


def stored_body(request: dict, lr_min: float = 1e-3) -> dict:
    """The event body a worker applies for a request: as the verb queues it, through the queue's
    encoding (``event_bytes``) and back (``Event.parse``)."""
    body = event_body(parse(VERBS[request["verb"]].model, request["body"]))
    if request["verb"] == "init_instant":
        body["lr_min"] = lr_min
    return Event.parse(b"0 " + event_bytes("x", request["verb"], body, False)).body


def reference(store: WeightStore, ns: str, core: str, by_id: dict[str, dict]) -> Any:
    """Replay, one by one, the events of ``core`` in the order the store's log says it applied them."""
    events = []
    for seq, eid, _version, ok in store.applied_log(ns, core):
        req = by_id[eid]
        assert CORE_OF_VERB[req["verb"]] == core
        events.append(Event(seq, eid, req["verb"], stored_body(req)))
    return replay(UPDATES, core, events)


def probes(seed: int, n: int = 12) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(DIM).tolist() for _ in range(n)]


def read_answers(dispatch, ns: str, xs: list[list[float]]) -> dict[str, list]:
    """apply_adapter / route / ewc_penalty answers for the probes (without versions)."""
    def data(req: dict) -> Any:
        out = dispatch(req)
        assert out["ok"], out
        return {k: v for k, v in out["data"].items() if k != "version"}

    return {
        "apply_adapter": [data({"verb": "apply_adapter", "body": {"namespace": ns, "embedding": x}}) for x in xs],
        "route": [data({"verb": "route", "body": {"namespace": ns, "embedding": x, "estimated_tokens": 5000}})
                  for x in xs],
        "ewc_penalty": [data({"verb": "ewc_penalty", "body": {"namespace": ns, "param_id": f"layer{i % 3}",
                                                              "params": x[:8]}}) for i, x in enumerate(xs)],
    }


def trained_reads(dispatch, ns: str, seed: int) -> tuple[list[dict], list[dict]]:
    """Train ``ns`` with 20 update events through the workers; return the three read requests
    (route, apply_adapter, ewc_penalty) on one probe and the running service's answers."""
    for req in init_requests(ns) + update_requests(ns, 20, seed=seed):
        out = dispatch(req)
        assert out["ok"], out
    x = probes(seed=seed + 1, n=1)[0]
    reads = [{"verb": "route", "body": {"namespace": ns, "embedding": x, "estimated_tokens": 5000}},
             {"verb": "apply_adapter", "body": {"namespace": ns, "embedding": x}},
             {"verb": "ewc_penalty", "body": {"namespace": ns, "param_id": "layer0", "params": x[:8]}}]
    expected = [dispatch(r) for r in reads]
    assert all(a["ok"] for a in expected), expected
    return reads, expected


def expected_answers(cores: dict[str, Any], xs: list[list[float]]) -> dict[str, list]:
    """The same answers computed from reference cores, outside the service."""
    instant, router, ewc = cores["instant"], cores["router"], cores["ewc"]
    cur = Current(Record.of(router, "ref", 1, 0), router)
    return {
        "apply_adapter": [{"logits": instant.apply(x).tolist(), "targets": instant.targets} for x in xs],
        "route": [route_read(cur, x, 5000) for x in xs],
        "ewc_penalty": [{"penalty": ewc.penalty(f"layer{i % 3}", x[:8])} for i, x in enumerate(xs)],
    }


def wait_all_applied(store: WeightStore, ns: str, counts: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = {c: int(store.r.get(StateKeys.of(ns, c).done) or 0) for c in counts}
        if done == counts:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not all events applied: {done} of {counts}")
        time.sleep(0.1)


def same_bytes(a: Any, b: Any) -> bool:
    return to_bytes(a) == to_bytes(b)


def updates(store: WeightStore, ns: str, core: str) -> int:
    """The update count of a state (0 when it was never written)."""
    record = store.load(ns, core)
    return 0 if record is None else record.updates
