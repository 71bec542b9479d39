"""Applying events: a micro-batch equals one-by-one application; failures change nothing."""

from __future__ import annotations

import numpy as np

from learn import to_bytes
from workers.cores import apply_batch, replay
from workers.events import Event
from workers.service import Current
from workers.store_record import Record
from workers.reads import route_read
from workers.verbs import UPDATES


def ev(seq: int, verb: str, body: dict) -> Event:
    return Event(seq, f"e{seq}", verb, body)


def instant_events(n: int, dim: int = 6, seed: int = 0) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = [ev(1, "init_instant", {"targets": ["a", "b", "c"], "in_dim": dim, "lr_min": 1e-3})]
    for i in range(2, n + 2):
        body = {"embedding": rng.standard_normal(dim).tolist(), "model": "abc"[i % 3],
                "payload": {"quality": float(rng.random())}, "now_ms": i}
        if i % 17 == 0:
            body["embedding"] = body["embedding"][:-1]  # wrong dimension: fails, changes nothing
        if i % 29 == 0:
            out.append(ev(i, "reset_adapter", {}))
            continue
        out.append(ev(i, "feedback", body))
    return out


def router_events(n: int, dim: int = 5, seed: int = 1) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = [ev(1, "init_router", {"in_dim": dim, "targets": ["x", "y"], "epsilon": 0.2})]
    for i in range(2, n + 2):
        body = {"target": "xy"[i % 2], "quality": float(rng.random())}
        if i % 3:
            body["embedding"] = rng.standard_normal(dim).tolist()
            body["estimated_tokens"] = int(rng.integers(0, 100_000))
        if i % 23 == 0:
            body["target"] = "nope"
        out.append(ev(i, "record_outcome", body))
    samples = [{"embedding": rng.standard_normal(dim).tolist(), "target": "x", "quality": 0.3}
               for _ in range(8)]
    out.append(ev(n + 2, "train_router", {"samples": samples, "epochs": 2}))
    out.append(ev(n + 3, "anchor_router", {"samples": samples}))
    out += [ev(n + 4 + i, "record_outcome", {"target": "y", "quality": 0.9,
                                             "embedding": rng.standard_normal(dim).tolist()})
            for i in range(5)]
    return out


def ewc_events(n: int, seed: int = 2) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        if i % 4 == 0:
            k = 3 if i % 8 else 4  # param_id "p" holds 3 values: the 4-value ones fail
            out.append(ev(i, "consolidate", {"param_id": "p", "params": rng.standard_normal(k).tolist(),
                                             "grads": rng.standard_normal(k).tolist()}))
        else:
            out.append(ev(i, "record_loss", {"loss": float(rng.random() * (10 if i % 11 == 0 else 1))}))
    return out


def check_batches_equal_replay(kind: str, events: list[Event], sizes: list[int]) -> None:
    ref = replay(UPDATES, kind, events)
    core, updates, results, i = None, 0, [], 0
    k = 0
    while i < len(events):
        size = sizes[k % len(sizes)]
        k += 1
        batch = apply_batch(UPDATES, kind, core, updates, events[i:i + size])
        core, updates = batch.core, batch.updates
        results += batch.results
        i += size
    assert to_bytes(core) == to_bytes(ref.core)
    assert updates == ref.updates
    assert results == ref.results
    assert any(not r["ok"] for r in results), "the stream should contain failing events"


def test_instant_batches_equal_one_by_one() -> None:
    check_batches_equal_replay("instant", instant_events(120), [1, 7, 64, 3])


def test_router_batches_equal_one_by_one() -> None:
    check_batches_equal_replay("router", router_events(80), [5, 1, 32])


def test_ewc_batches_equal_one_by_one() -> None:
    check_batches_equal_replay("ewc", ewc_events(60), [2, 9, 60])


def test_failed_event_changes_nothing() -> None:
    batch = apply_batch(UPDATES, "instant", None, 0, instant_events(3))
    before = to_bytes(batch.core)
    bad = apply_batch(UPDATES, "instant", batch.core, batch.updates,
                      [ev(9, "feedback", {"embedding": [0.0] * 6, "model": "zzz",
                                          "payload": {"quality": 0.9}, "now_ms": 0})])
    assert bad.results[0] == {"verb": "feedback", "seq": 9, "event_id": "e9", "ok": False,
                              "error": "model: unknown target"}
    assert not bad.changed and bad.updates == batch.updates
    assert to_bytes(bad.core) == before


def test_update_before_init_fails_but_ewc_starts_itself() -> None:
    out = apply_batch(UPDATES, "instant", None, 0, [ev(1, "reset_adapter", {})])
    assert out.results[0]["error"].startswith("namespace: has no instant state")
    assert out.core is None
    out = apply_batch(UPDATES, "ewc", None, 0, [ev(1, "record_loss", {"loss": 0.5})])
    assert out.results[0]["ok"] and out.core.losses_seen == 1 and out.updates == 1


def test_route_read_is_deterministic_and_leaves_the_router_alone() -> None:
    batch = replay(UPDATES, "router", router_events(40))
    record = Record.of(batch.core, "ns", 7, batch.updates)
    cur = Current(record, batch.core)
    before = to_bytes(batch.core)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(5).tolist() for _ in range(400)]
    first = [route_read(cur, x) for x in xs]
    assert [route_read(cur, x) for x in xs] == first
    assert to_bytes(batch.core) == before
    explored = sum(r["exploration"] for r in first) / len(first)
    assert 0.12 < explored < 0.28  # epsilon = 0.2
    again = Current(Record.decode(record.encode(), "ns", "router"), record.core())
    assert [route_read(again, x) for x in xs] == first


def test_record_outcome_reports_an_input_shift_and_health_counts_it() -> None:
    from workers.handlers import _details

    rng = np.random.default_rng(4)
    dim, window = 128, 50  # the router's default window; many dimensions, as real embeddings have
    shifted = np.zeros(dim)
    shifted[:16] = 1.5
    events = [ev(1, "init_router", {"in_dim": dim, "targets": ["x", "y"]})]
    for i in range(20 * window):
        x = rng.standard_normal(dim) + (shifted if i >= 10 * window else 0.0)
        events.append(ev(i + 2, "record_outcome", {"target": "xy"[i % 2], "quality": float(rng.random()),
                                                   "embedding": x.tolist()}))
    batch = apply_batch(UPDATES, "router", None, 0, events)
    outcomes = batch.results[1:]
    assert all(r["ok"] for r in outcomes)
    fired = [i for i, r in enumerate(outcomes) if r["data"]["boundary"]]
    assert fired and fired[0] == 11 * window - 1  # the last outcome of the first shifted window
    assert all(i < 13 * window for i in fired)
    assert outcomes[-1]["data"]["boundaries"] == len(fired) == batch.core.boundaries
    details = _details("router", batch.core)
    assert details["boundaries"] == len(fired) and details["shift_score"] == batch.core.shift_score
