"""The weight store against a real redis-server: records, compare-and-set, idempotency, rollback."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from kg.config import Settings
from learn import MicroLoRA, to_bytes
from workers.cores import replay
from workers.verbs import UPDATES
from workers.drain import Drainer
from workers.errors import StateCorrupt
from workers.events import Event, event_bytes
from workers.store_keys import StateKeys
from workers.store_record import Record
from workers.weight_store import WeightStore


@pytest.fixture
def store(redis_server, settings: Settings) -> WeightStore:
    return WeightStore(redis_server.client(), settings.workers)


def put_events(store: WeightStore, ns: str, core: str, events: list[tuple[str, str, dict]]) -> None:
    items = [(eid, event_bytes(eid, verb, body, False)) for eid, verb, body in events]
    assert all(store.enqueue(ns, core, eid, payload).status == "accepted" for eid, payload in items)


def test_record_round_trip_and_every_check(store: WeightStore) -> None:
    core = MicroLoRA(["a", "b"], in_dim=3, seed=4)
    record = Record.of(core, "ns", 5, 2)
    raw = record.encode()
    back = Record.decode(raw, "ns", "instant")
    assert back == record and to_bytes(back.core()) == to_bytes(core)

    def fails(raw: bytes, kind: str = "instant", ns: str = "ns") -> str:
        with pytest.raises(StateCorrupt) as info:
            Record.decode(raw, ns, kind).core()
        return info.value.reason

    for i in (len(raw) - 1, len(raw) - 200, len(raw) // 2):  # a flipped byte in the state
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        assert fails(bytes(flipped)) == "checksum mismatch"
    assert fails(raw, kind="router") == "record belongs to another state"
    assert fails(raw, ns="other") == "record belongs to another state"
    assert fails(b"junk") == "not a weight record (bad magic)"
    head = raw[8:8 + int.from_bytes(raw[4:8], "little")]
    newer = head.replace(b'"schema_version":1', b'"schema_version":2')
    assert "schema version 2" in fails(raw[:4] + len(newer).to_bytes(4, "little") + newer + raw[8 + len(head):])
    # a blob whose own checksum matches but whose learn state is cut short is caught by learn
    short = replace(record, state=record.state[:-8])
    assert "unreadable" in fails(short.encode()) or "checksum" in fails(short.encode())


def test_enqueue_is_once_per_event_id_and_respects_the_epoch(store: WeightStore, redis_server) -> None:
    first = store.enqueue("ns", "ewc", "id-1", event_bytes("id-1", "record_loss", {"loss": 1.0}, False))
    again = store.enqueue("ns", "ewc", "id-1", event_bytes("id-1", "record_loss", {"loss": 1.0}, False))
    assert (first.status, first.seq, first.publish) == ("accepted", 1, True)
    assert (again.status, again.detail) == ("duplicate", "pending")
    assert store.depth("ns", "ewc") == 1
    moved = store.enqueue("ns", "ewc", "id-2", event_bytes("id-2", "record_loss", {"loss": 1.0}, False), epoch=3)
    assert (moved.status, moved.detail) == ("epoch", "0")
    assert store.depth("ns", "ewc") == 1
    assert [k.member for k in store.states()] == ["ns/ewc"]


def test_bulk_enqueue_is_once_per_event_id_in_order_and_respects_the_epoch(store: WeightStore) -> None:
    def item(eid: str, loss: float) -> tuple[str, bytes]:
        return eid, event_bytes(eid, "record_loss", {"loss": loss, "embedding": [loss, 2.0]}, False)

    assert store.enqueue("ns", "ewc", "a", event_bytes("a", "record_loss", {"loss": 0.5}, False)).seq == 1
    # chunks of 2: "a" was queued before, the second "c" repeats the first; order and seqs kept
    out = store.enqueue_bulk("ns", "ewc", [item("b", 1.0), item("a", 9.0), item("c", 2.0), item("c", 9.0),
                                           item("d", 3.0)], chunk=2)
    assert out.accepted == [True, False, True, False, True] and out.epoch is None
    events = store.pending("ns", "ewc", 100).events
    assert [(e.seq, e.id, e.body["loss"]) for e in events] == [(1, "a", 0.5), (2, "b", 1.0), (3, "c", 2.0),
                                                                (4, "d", 3.0)]
    assert events[1].body["embedding"].tolist() == [1.0, 2.0]
    assert store.result("ns", "ewc", "c") == {"status": "pending"}
    # a moved epoch refuses the whole chunk: nothing queued, no id taken
    refused = store.enqueue_bulk("ns", "ewc", [item("e", 1.0), item("f", 1.0)], epoch=3)
    assert refused.accepted == [None, None] and refused.epoch == "0" and not refused.publish
    assert store.depth("ns", "ewc") == 4 and store.result("ns", "ewc", "e") is None
    assert store.enqueue("ns", "ewc", "g", event_bytes("g", "record_loss", {"loss": 0.5}, False)).seq == 5
    # payloads wait in the state's hash, one per queued bulk event; consuming them deletes them
    k = StateKeys.of("ns", "ewc")
    assert store.r.hlen(k.payloads) == 3
    assert Drainer(store).run("ns", "ewc", "task-1").applied == 5
    assert store.r.hlen(k.payloads) == 0 and store.load("ns", "ewc").core().losses_seen == 5
    assert [e for _, e, _, _ in store.applied_log("ns", "ewc")] == ["a", "b", "c", "d", "g"]


def test_drain_applies_in_order_and_a_redelivered_drain_is_a_no_op(store: WeightStore) -> None:
    losses = [1.0, 1.1, 0.9, 1.0, 7.5, 1.0]
    put_events(store, "ns", "ewc", [(f"e{i}", "record_loss", {"loss": x}) for i, x in enumerate(losses)])
    report = Drainer(store).run("ns", "ewc", "task-1")
    assert (report.status, report.applied) == ("drained", len(losses))
    version = store.version("ns", "ewc")
    blob = store.r.get(StateKeys.of("ns", "ewc").blob)
    # the same task delivered again finds nothing to do and writes nothing
    assert Drainer(store).run("ns", "ewc", "task-1").applied == 0
    assert store.version("ns", "ewc") == version and store.r.get(StateKeys.of("ns", "ewc").blob) == blob
    core = store.load("ns", "ewc").core()
    assert (core.losses_seen, core.boundaries) == (6, 1)
    assert [(s, e) for s, e, _, _ in store.applied_log("ns", "ewc")] == [(i + 1, f"e{i}") for i in range(6)]
    assert store.result("ns", "ewc", "e4")["data"]["boundary"] is True


CAS_WORKER = """
from kg.config import Settings
from workers.connect import redis_client
from workers.drain import Drainer, DrainReport
from workers.weight_store import WeightStore
settings = Settings.from_env()
store = WeightStore(redis_client(settings), settings.workers)
drainer, report = Drainer(store), DrainReport("drained")
while drainer.step("ns", "ewc", settings.workers.drain_batch, report):  # no lock: only the CAS orders them
    pass
print(report.applied, report.commits, report.conflicts)
"""


def test_concurrent_compare_and_set_loses_nothing(store: WeightStore, env: dict) -> None:
    """RELIABILITY 7: N processes x M compare-and-set updates of one blob, final version N*M."""
    n_proc, m = 4, 120
    put_events(store, "ns", "ewc", [(f"e{i}", "record_loss", {"loss": float(i % 7)}) for i in range(n_proc * m)])
    env = dict(env, KG_DRAIN_BATCH="1")
    procs = [subprocess.Popen([sys.executable, "-c", CAS_WORKER], env=env,
                              stdout=subprocess.PIPE, text=True) for i in range(n_proc)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    applied = [int(o[0]) for o in outs]
    conflicts = sum(int(o[2]) for o in outs)
    assert sum(applied) == n_proc * m
    assert store.version("ns", "ewc") == n_proc * m
    record = store.load("ns", "ewc")
    assert record.updates == n_proc * m and record.core().losses_seen == n_proc * m
    log = store.applied_log("ns", "ewc")
    assert [s for s, *_ in log] == list(range(1, n_proc * m + 1))
    assert [v for _, _, v, _ in log] == list(range(1, n_proc * m + 1))
    ref = replay(UPDATES, "ewc", [Event(i + 1, f"e{i}", "record_loss", {"loss": float(i % 7)}) for i in range(n_proc * m)])
    assert to_bytes(record.core()) == to_bytes(ref.core)
    print(f"processes applied {applied}, {conflicts} compare-and-set conflicts retried")


def test_rollback_restores_the_previous_version(store: WeightStore) -> None:
    put_events(store, "ns", "ewc", [("a", "record_loss", {"loss": 1.0})])
    Drainer(store).run("ns", "ewc", "t1")
    v1 = store.load("ns", "ewc")
    put_events(store, "ns", "ewc", [("b", "consolidate", {"param_id": "p", "params": [1.0], "grads": [2.0]})])
    Drainer(store).run("ns", "ewc", "t2")
    assert store.version("ns", "ewc") == 2
    key = StateKeys.of("ns", "ewc").blob
    raw = bytearray(store.r.get(key))
    raw[-3] ^= 0xFF
    store.r.set(key, bytes(raw))
    with pytest.raises(StateCorrupt, match="checksum mismatch"):
        store.load("ns", "ewc")
    restored, record = store.rollback("ns", "ewc")
    assert (restored, record.version) == (1, 3)
    now = store.load("ns", "ewc")
    assert now.state == v1.state and now.updates == v1.updates == 1
    assert store.epoch("ns", "ewc") == 3
    where = [(w, r.version if isinstance(r, Record) else "corrupt") for w, r in store.history("ns", "ewc")]
    assert where == [("current", 3), ("history", "corrupt"), ("history", 1)]
    with pytest.raises(StateCorrupt, match="no version 9"):
        store.rollback("ns", "ewc", to_version=9)


def test_a_drain_hands_over_only_after_letting_go_of_the_lock(store: WeightStore) -> None:
    """Otherwise the successor finds the lock held, returns, and the queue is left without a drain."""
    put_events(store, "ns", "ewc", [(f"e{i}", "record_loss", {"loss": 1.0}) for i in range(5)])
    seen = []
    report = Drainer(store).run("ns", "ewc", "t1", budget_s=1e-9,
                                republish=lambda: seen.append(store.lock_holder("ns", "ewc")))
    assert report.status == "handed_over" and seen == [None]
    assert Drainer(store).run("ns", "ewc", "t2").applied == 5


def test_history_keeps_at_most_one_version_per_interval(redis_server, settings: Settings) -> None:
    """Under a stream of commits, history is not a copy of every version (each is a whole blob)."""
    store = WeightStore(redis_server.client(), replace(settings.workers, history_every_ms=60_000))
    for i in range(4):
        put_events(store, "ns", "ewc", [(f"e{i}", "record_loss", {"loss": float(i)})])
        Drainer(store).run("ns", "ewc", f"t{i}")
    kept = [(w, r.version) for w, r in store.history("ns", "ewc")]
    assert kept == [("current", 4), ("history", 1)]
