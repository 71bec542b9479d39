"""The queue side of the weight store: enqueueing events, what a drain reads, its lock, and tickets.

A mixin of :class:`workers.weight_store.WeightStore` (which holds the client, the settings and the
registered Lua scripts); the keys are those of :mod:`workers.store_keys`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import redis

from kg.config import WorkerSettings
from workers.errors import StateCorrupt
from workers.events import Event
from workers.store_keys import STATES_KEY, StateKeys

BULK_CHUNK = 500  # events per enqueue_bulk.lua call: one call must not block Redis for long


@dataclass(frozen=True)
class Enqueued:
    status: str  # "accepted" | "duplicate" | "epoch"
    seq: int = 0
    publish: bool = False
    detail: str = ""  # duplicate: the id's stored status; epoch: the current epoch


class PayloadGone(Exception):
    """A queued reference whose payload is gone: the event was consumed after the queue was read
    (read again), or, if it persists, the state is corrupt."""

    def __init__(self, ns: str, core: str, seq: int) -> None:
        super().__init__(f"payload of event {seq} of {ns}/{core} is gone")
        self.seq = seq


@dataclass(frozen=True)
class Bulk:
    """What ``enqueue_bulk`` did: per event True (queued), False (duplicate id) or None (refused:
    the epoch moved), whether this caller must publish a drain, and the epoch it found."""

    accepted: list[bool | None]
    publish: bool
    epoch: str | None = None


@dataclass(frozen=True)
class Pending:
    """What a drain sees in one read: the version, consumed count, head events and crash note."""

    version: int
    done: int
    events: list[Event]
    crash: dict[str, Any] | None
    careful: int = 0


@dataclass(frozen=True)
class Applied:
    """One consumed event for ``commit``: its log line, result and whether a caller waits."""

    event: Event
    result: dict[str, Any]


class QueueOps:
    """Enqueue, read the queue, coordinate drains, and read results (tickets)."""

    r: redis.Redis
    ws: WorkerSettings
    _scripts: dict[str, Any]

    # -- the queue -----------------------------------------------------------------------------
    def enqueue(self, ns: str, core: str, event_id: str, payload: str | bytes, *,
                epoch: int | None = None, trigger: bool = True) -> Enqueued:
        """Append one event (see enqueue.lua); ``epoch`` None accepts any epoch."""
        k = StateKeys.of(ns, core)
        out = self._scripts["enqueue"](
            keys=[k.pending, k.seq, k.event(event_id), k.flag, k.epoch, STATES_KEY],
            args=[payload, self.ws.event_ttl_s, self._flag_ttl(), "1" if trigger else "0",
                  "*" if epoch is None else str(epoch), k.member],
        )
        code = int(out[0])
        if code == 1:
            return Enqueued("accepted", int(out[1]), bool(int(out[2])))
        detail = out[1].decode() if isinstance(out[1], bytes) else str(out[1])
        return Enqueued("duplicate" if code == 0 else "epoch", detail=detail)

    def enqueue_bulk(self, ns: str, core: str, items: Sequence[tuple[str, str | bytes]], *,
                     epoch: int | None = None, chunk: int = BULK_CHUNK) -> Bulk:
        """Append (event id, payload) pairs in order: per ``chunk``, one MULTI/EXEC of an HSET of
        the payloads and ``enqueue_bulk.lua`` (which queues references to them).

        A chunk refused because the epoch moved queues nothing; the chunks before it stay queued
        (``Bulk.accepted`` is None for the refused events: check them again and resend those).
        """
        k = StateKeys.of(ns, core)
        keys = [k.pending, k.seq, k.flag, k.epoch, STATES_KEY, k.payloads]
        fixed = [self.ws.event_ttl_s, self._flag_ttl(), "1", "*" if epoch is None else str(epoch),
                 k.member, k.prefix]
        script = self._scripts["enqueue_bulk"]
        token = uuid.uuid4().hex[:16]  # payload fields are unique per call, never an event's id
        accepted: list[bool | None] = []
        publish, epoch_now = False, None
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            fields = [f"{token}.{start + i}" for i in range(len(part))]
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(k.payloads, mapping=dict(zip(fields, (p for _, p in part))))
            script(keys=keys, args=[*fixed, len(part), *(e for e, _ in part), *fields], client=pipe)
            out = pipe.execute()[1]
            if int(out[0]) == -1:
                epoch_now = out[1].decode() if isinstance(out[1], bytes) else str(out[1])
                accepted += [None] * len(part)
                continue
            publish |= bool(int(out[1]))
            accepted += [bool(int(flag)) for flag in out[3:3 + len(part)]]
        return Bulk(accepted, publish, epoch_now)

    def _flag_ttl(self) -> int:
        return int(self.ws.visibility_timeout_s) + 1

    def pending(self, ns: str, core: str, limit: int) -> Pending:
        k = StateKeys.of(ns, core)
        for _ in range(3):
            pipe = self.r.pipeline(transaction=True)
            pipe.get(k.ver)
            pipe.get(k.done)
            pipe.lrange(k.pending, 0, limit - 1)
            pipe.get(k.crash)
            pipe.get(k.careful)
            ver, done, raws, crash, careful = pipe.execute()
            try:
                events = self._events(ns, core, raws)
            except PayloadGone as gone:  # consumed meanwhile (a drain whose lease ran out)?
                if int(self.r.get(k.done) or 0) != int(done or 0):
                    continue
                raise StateCorrupt(ns, core, f"queued event {gone.seq} has no payload") from None
            return Pending(int(ver or 0), int(done or 0), events, json.loads(crash) if crash else None,
                           int(careful or 0))
        raise StateCorrupt(ns, core, "the queue kept moving while being read")

    def _events(self, ns: str, core: str, raws: list[bytes]) -> list[Event]:
        """Entries are ``"<seq> <payload>"`` or ``"<seq> @<field>"`` (payload in the hash)."""
        split = [raw.partition(b" ") for raw in raws]
        fields = [rest[1:].decode() for _, _, rest in split if rest[:1] == b"@"]
        payloads = iter(self.r.hmget(StateKeys.of(ns, core).payloads, fields) if fields else ())
        events = []
        for seq, _, rest in split:
            if rest[:1] != b"@":
                events.append(Event.decode(int(seq), rest))
                continue
            payload = next(payloads)
            if payload is None:  # consumed by a commit after our read: the caller reads again
                raise PayloadGone(ns, core, int(seq))
            events.append(Event.decode(int(seq), payload, rest[1:].decode()))
        return events

    def depth(self, ns: str, core: str) -> int:
        return int(self.r.llen(StateKeys.of(ns, core).pending))

    # -- drain coordination ----------------------------------------------------------------------
    def set_crash(self, ns: str, core: str, note: dict[str, Any]) -> None:
        """Record what a drain is about to apply; ``commit`` clears it, a crash leaves it."""
        self.r.set(StateKeys.of(ns, core).crash, json.dumps(note), ex=int(self.ws.visibility_timeout_s) * 4)

    def set_careful(self, ns: str, core: str, upto_seq: int) -> None:
        """Apply events up to ``upto_seq`` one at a time (they were in a batch that crashed)."""
        self.r.set(StateKeys.of(ns, core).careful, upto_seq, ex=int(self.ws.visibility_timeout_s) * 4)

    def clear_crash(self, ns: str, core: str) -> None:
        self.r.delete(StateKeys.of(ns, core).crash)

    def clear_flag(self, ns: str, core: str) -> None:
        self.r.delete(StateKeys.of(ns, core).flag)

    def lock(self, ns: str, core: str, token: str) -> bool:
        lease = int(self.ws.task_time_limit_s * 1000) + 5000
        return bool(self.r.set(StateKeys.of(ns, core).lock, token, nx=True, px=lease))

    def lock_holder(self, ns: str, core: str) -> str | None:
        raw = self.r.get(StateKeys.of(ns, core).lock)
        return raw.decode() if raw else None

    def steal(self, ns: str, core: str, dead_token: str, token: str) -> bool:
        lease = int(self.ws.task_time_limit_s * 1000) + 5000
        k = StateKeys.of(ns, core)
        return bool(self._scripts["steal"](keys=[k.lock], args=[dead_token, token, lease]))

    def finish(self, ns: str, core: str, token: str) -> bool:
        k = StateKeys.of(ns, core)
        return bool(self._scripts["finish"](keys=[k.pending, k.flag, k.lock], args=[token]))

    def release(self, ns: str, core: str, token: str) -> None:
        self._scripts["release"](keys=[StateKeys.of(ns, core).lock], args=[token])

    def raise_flag(self, ns: str, core: str) -> bool:
        """Set the drain flag (True when it was not set: the caller publishes a drain)."""
        return bool(self.r.set(StateKeys.of(ns, core).flag, "1", nx=True, ex=self._flag_ttl()))

    # -- tickets -------------------------------------------------------------------------------
    def result(self, ns: str, core: str, event_id: str) -> dict[str, Any] | None:
        """The event's result, ``{"status": "pending"}`` while queued, None if unknown/expired."""
        raw = self.r.get(StateKeys.of(ns, core).event(event_id))
        if raw is None:
            return None
        if raw == b"pending":
            return {"status": "pending"}
        return json.loads(raw)

    def results(self, ns: str, core: str, event_ids: list[str]) -> list[dict[str, Any] | None]:
        """``result`` of many events in one round trip."""
        k = StateKeys.of(ns, core)
        raws = self.r.mget([k.event(e) for e in event_ids]) if event_ids else []
        return [None if raw is None else {"status": "pending"} if raw == b"pending" else json.loads(raw)
                for raw in raws]

    def wait(self, ns: str, core: str, event_id: str, timeout_s: float) -> dict[str, Any] | None:
        """Block until the event is applied (its result) or ``timeout_s`` passes (None)."""
        k = StateKeys.of(ns, core)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # short blocking slices: stay under the client's socket timeout
            got = self.r.blpop([k.wake(event_id)], timeout=min(1.0, max(left, 0.01)))
            if got is not None:
                self.r.delete(k.wake(event_id))
                return json.loads(got[1])
            done = self.result(ns, core, event_id)
            if done is not None and "status" not in done:
                return done

