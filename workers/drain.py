"""Draining one state's queue: micro-batches of events applied by compare-and-set.

One drain at a time holds a state's lock (a lease, token ``host|pid|task``); another drain that
finds it held returns at once, because the holder drains everything, and its final emptiness check
(``finish.lua``) is atomic with ``enqueue.lua``. A holder that died on this host is detected by
its pid and the lock taken over; elsewhere the lease expires. The lock only saves work: the
compare-and-set on (version, consumed count) is what makes each event take effect exactly once.

Crash isolation: before applying a batch the drain writes a crash note (head seq, batch size,
attempt); the commit deletes it. A drain that finds a note from another holder for the same head
knows that batch killed its process: it applies the events of that batch one at a time (the
``careful`` window), and after ``max_attempts`` crashes of the same single event consumes it as
failed and records it in ``kg:w:dead``. A poisonous event thus costs 1 + ``max_attempts`` crashes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import redis

from kg.procs import pid_alive
from workers.boundary import queue_anchors
from workers.cores import apply_batch
from workers.verbs import UPDATES
from workers.errors import StateCorrupt
from workers.events import Event
from workers.store_queue import Applied
from workers.store_record import Record, now_ms
from workers.weight_store import WeightStore

log = logging.getLogger(__name__)
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
HOST = socket.gethostname()


@dataclass
class DrainReport:
    status: str  # "drained" | "busy" | "handed_over"
    applied: int = 0
    commits: int = 0
    conflicts: int = 0
    dead: int = 0


CACHE_MAX_BYTES = 128 << 20
"""State bytes a worker process keeps decoded (about twice that resident: the blob and the core).
Least recently used first out, so a process that drains many large states stays bounded."""


class CoreCache:
    """Decoded cores by state, valid for one version (a drain reuses what it committed).

    >>> from learn import EWC
    >>> cache = CoreCache(max_bytes=10)
    >>> cache.put("a", "ewc", Record("ewc", "a", 1, 0, b"x" * 6, 0), EWC())
    >>> cache.put("b", "ewc", Record("ewc", "b", 1, 0, b"x" * 6, 0), EWC())  # evicts "a"
    >>> cache.get("a", "ewc", 1) is None, cache.get("b", "ewc", 1) is not None, cache.bytes
    (True, True, 6)
    """

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._cores: OrderedDict[tuple[str, str], tuple[int, Record, Any]] = OrderedDict()

    def get(self, ns: str, kind: str, version: int) -> tuple[Record, Any] | None:
        hit = self._cores.get((ns, kind))
        if hit is None or hit[0] != version:
            return None
        self._cores.move_to_end((ns, kind))
        return hit[1], hit[2]

    def put(self, ns: str, kind: str, record: Record, core: Any) -> None:
        self.drop(ns, kind)
        self._cores[(ns, kind)] = (record.version, record, core)
        self.bytes += len(record.state)
        while self.bytes > self.max_bytes and len(self._cores) > 1:
            _, (_, old, _) = self._cores.popitem(last=False)
            self.bytes -= len(old.state)

    def drop(self, ns: str, kind: str) -> None:
        hit = self._cores.pop((ns, kind), None)
        if hit is not None:
            self.bytes -= len(hit[1].state)


def next_batch(batch: int, applied: int, took_s: float, budget_s: float, most: int) -> int:
    """Events for the next batch, so that one batch takes about the drain budget at most.

    A batch is applied and committed as a whole, and the budget is checked between batches: 2,048
    outcomes of a router at the largest size take ~30 s, which would keep every other state of
    the worker waiting. The cost per event is measured on the batch just applied (including its
    commit, so the estimate errs on the small side and grows back as batches speed up).

    >>> next_batch(2048, 2048, 30.0, 5.0, 2048)   # 15 ms per event: a 5 s batch holds 341
    341
    >>> next_batch(341, 341, 0.02, 5.0, 2048)     # fast again: back to the configured size
    2048
    >>> next_batch(8, 0, 0.01, 5.0, 2048)         # nothing applied: unchanged
    8
    """
    if applied <= 0 or took_s <= 0:
        return batch
    return max(1, min(most, int(budget_s * applied / took_s)))


class Drainer:
    """Applies a state's pending events; one instance per worker process."""

    def __init__(self, store: WeightStore, cache: CoreCache | None = None) -> None:
        self.store = store
        self.cache = cache or CoreCache()
        self.ws = store.ws
        self._unreleased: set[str] = set()  # lock tokens of ended drains that Redis refused to release

    def token(self, task_id: str) -> str:
        return f"{HOST}|{os.getpid()}|{task_id}"

    def acquire(self, ns: str, kind: str, token: str) -> bool:
        if self.store.lock(ns, kind, token):
            return True
        holder = self.store.lock_holder(ns, kind)
        if holder is None:
            return self.store.lock(ns, kind, token)
        host, _, rest = holder.partition("|")
        pid = rest.partition("|")[0]
        if host == HOST and pid.isdigit() and not pid_alive(int(pid)):
            log.warning("drain lock of %s/%s held by dead pid %s: taking over", ns, kind, pid)
            return self.store.steal(ns, kind, holder, token)
        if holder in self._unreleased:  # left by a drain of this process that ended: no one holds it
            self._unreleased.discard(holder)
            return self.store.steal(ns, kind, holder, token)
        return False

    def run(self, ns: str, kind: str, task_id: str, *, budget_s: float | None = None,
            republish: Callable[[], None] | None = None) -> DrainReport:
        """Drain until the queue is empty (release) or the budget is spent (hand over)."""
        token = self.token(task_id)
        if not self.acquire(ns, kind, token):
            return DrainReport("busy")
        report = self._run(ns, kind, token, budget_s)
        if report.status == "handed_over" and republish is not None:
            # only after the lock is released: a successor that found it held would return
            # "busy" and leave the queue without a drain
            republish()
        return report

    def _run(self, ns: str, kind: str, token: str, budget_s: float | None) -> DrainReport:
        report = DrainReport("drained")
        budget = budget_s or self.ws.drain_budget_s
        deadline = time.monotonic() + budget
        batch = self.ws.drain_batch  # shrinks when events are slow (large states): see below
        try:
            while True:
                if time.monotonic() > deadline:
                    report.status = "handed_over"
                    return report
                limit = batch
                before = report.applied
                started = time.monotonic()
                more = self.step(ns, kind, limit, report, token)
                batch = next_batch(batch, report.applied - before, time.monotonic() - started, budget,
                                   self.ws.drain_batch)
                if not more:
                    if self.store.finish(ns, kind, token):
                        return report
                elif 0 < report.applied - before < limit // 4 and self.ws.drain_linger_ms:
                    # a stream of small batches: every commit rewrites the whole blob, so give
                    # the queue a moment to fill (the first event of a quiet queue never waits)
                    time.sleep(self.ws.drain_linger_ms / 1000)
        except StateCorrupt as exc:
            self.store.note_error(ns, kind, str(exc))
            self.store.clear_flag(ns, kind)  # let go: a rollback or the next event re-triggers
            raise
        except TRANSIENT:
            # Redis went away: not the events' fault, so the crash note must not count against them
            try:
                self.store.clear_crash(ns, kind)
            except TRANSIENT:  # still down: the note stays, and one batch is retried event by event
                pass
            raise
        # any other exception leaves the crash note: the retry applies that batch event by event
        finally:
            try:
                self.store.release(ns, kind, token)
            except Exception:  # Redis is down: the lease expires, or a local takeover
                log.warning("could not release the drain lock of %s/%s", ns, kind)
                self._unreleased.add(token)

    def step(self, ns: str, kind: str, limit: int, report: DrainReport, token: str | None = None) -> bool:
        """One read-apply-commit round of up to ``limit`` events; False when there was nothing to
        apply. ``token``: the lock this drain holds, and crash isolation on; without it, no lock
        and no crash notes: only the compare-and-set orders concurrent steps (how the tests race
        drains against each other, and the benchmark applies one event per task)."""
        cached_ver = None
        pend = self.store.pending(ns, kind, limit)
        if not pend.events:
            return False
        hit = self.cache.get(ns, kind, pend.version)
        if hit is None:
            record = self.store.load(ns, kind)
            if record is not None and record.version != pend.version:
                return True  # moved between the two reads: read again
            if record is None and pend.version:
                raise StateCorrupt(ns, kind, f"version {pend.version} has no blob")
            core = record.core() if record is not None else None
            updates = record.updates if record is not None else 0
        else:
            record, core = hit
            updates = record.updates
            cached_ver = record.version
        events = pend.events
        if token is not None:
            events = self._isolate(ns, kind, token, pend)
            if not events:  # the head was dead-lettered
                report.dead += 1
                return True
        self.cache.drop(ns, kind)  # the core is about to be mutated in place
        batch = apply_batch(UPDATES, kind, core, updates, events)
        new_version = pend.version + 1 if batch.changed else pend.version
        new_record = (Record.of(batch.core, ns, new_version, batch.updates) if batch.changed else None)
        queue_anchors(self.store, ns, kind, batch.core, events, batch.results, batch.outcomes)  # before the commit
        applied = [Applied(e, r | {"version": new_version}) for e, r in zip(events, batch.results)]
        ok, _, _ = self.store.commit(ns, kind, version=pend.version, done=pend.done, record=new_record,
                                     applied=applied, new_epoch=new_version if batch.init else None,
                                     outcomes=batch.outcomes)
        if not ok:
            report.conflicts += 1
            return True
        report.commits += 1
        report.applied += len(events)
        if batch.changed:
            self.cache.put(ns, kind, new_record, batch.core)
        elif cached_ver is not None or record is not None:
            self.cache.put(ns, kind, record, core)
        return True

    def _isolate(self, ns: str, kind: str, token: str, pend: Any) -> list[Event]:
        """Shrink the batch after a crash; dead-letter an event that crashed too often."""
        head = pend.events[0]
        note = pend.crash
        n, attempt = len(pend.events), 1
        if note and note.get("seq") == head.seq and note.get("token") != token:
            if note.get("n", 1) > 1:  # a batch crashed: go through its events one by one
                n = 1
                self.store.set_careful(ns, kind, head.seq + int(note["n"]) - 1)
                log.warning("a drain of %s/%s died in a batch of %s events from seq %d; "
                            "applying them one at a time", ns, kind, note["n"], head.seq)
            else:
                n, attempt = 1, int(note.get("attempt", 1)) + 1
            if attempt > self.ws.max_attempts:
                self._dead(ns, kind, head, pend, attempt - 1)
                return []
        elif head.seq <= pend.careful:
            n = 1
        self.store.set_crash(ns, kind, {"seq": head.seq, "n": n, "attempt": attempt, "token": token,
                                        "at_ms": now_ms()})
        return pend.events[:n]

    def _dead(self, ns: str, kind: str, head: Event, pend: Any, attempts: int) -> None:
        error = (f"worker: this event crashed its worker process {attempts} times and was dropped "
                 f"(recorded in kg:w:dead)")
        result = {"verb": head.verb, "seq": head.seq, "event_id": head.id, "ok": False,
                  "error": error, "version": pend.version}
        ok, _, _ = self.store.commit(ns, kind, version=pend.version, done=pend.done, record=None,
                                     applied=[Applied(head, result)])
        if ok:
            self.store.dead_letter({"namespace": ns, "core": kind, "seq": head.seq, "event_id": head.id,
                                    "verb": head.verb, "attempts": attempts, "at_ms": now_ms(),
                                    "reason": "crashed its worker process"})
            log.error("dead-lettered event %s of %s/%s after %d crashes", head.id, ns, kind, attempts)
