"""Learned state as versioned blobs in Redis: one per (namespace, core), written by compare-and-set.

A state lives under keys sharing one hash tag, ``kg:w:{<namespace>/<core>}:…``:

- ``blob``: a :class:`Record`: header (schema, version, update count, SHA-256 of the state) and the
  core's state as ``learn.to_bytes`` produced it (safetensors: no code runs on load).
- ``ver``: the version, a counter that only grows; a read revalidates its cache with one GET of it.
- ``hist`` / ``snaps``: earlier records, newest first, for ``kg state rollback`` (a version goes
  to ``hist`` when it is replaced, at most once per ``KG_STATE_HISTORY_EVERY_MS``).
- ``pending``: events waiting for a worker, in arrival order: ``"<seq> <payload>"``
  (:mod:`workers.events`), or ``"<seq> @<field>"`` with the payload in the ``payloads`` hash (bulk
  enqueues); ``seq`` counts accepted events and ``done`` consumed ones.
- ``log``: the order the store applied events in, ``"<seq> <event id> <version> <ok>"``.
- ``ev:<id>`` / ``wake:<id>``: an event's result (its ticket) and the list a waiting caller blocks on.
- ``epoch``: the version of the last ``init_*``; callers check events against the core of that epoch.
- ``flag`` / ``lock`` / ``crash`` / ``careful``: at most one drain task queued / running, what it
  was doing, and up to which event a crashed batch is being retried one event at a time.

Every write is one Lua script (EVALSHA, reloaded on NOSCRIPT by redis-py's ``Script``), so the
blob, the version, the consumed events and their results change together or not at all.

>>> StateKeys.of("team a/b", "router").blob
'kg:w:{team%20a%2Fb/router}:blob'
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import uuid
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote, unquote

import redis

import learn
from kg.config import WorkerSettings
from learn import StateError
from workers.errors import StateCorrupt
from workers.events import VECTOR_KEYS, Event, event_bytes, event_json, pack_vectors, unpack_vectors  # noqa: F401

SCHEMA = "kg-temporal.weights"
SCHEMA_VERSION = 1
MAGIC = b"KGW1"
KINDS = ("instant", "ewc", "router", "attention")
STATES_KEY = "kg:w:states"
DEAD_KEY = "kg:w:dead"
DEAD_KEEP = 1000
LUA_DIR = Path(__file__).resolve().parent / "lua"
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # one encoder, not one per call
BULK_CHUNK = 500  # events per enqueue_bulk.lua call: one call must not block Redis for long


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class StateKeys:
    namespace: str
    core: str
    prefix: str

    @classmethod
    @lru_cache(maxsize=4096)
    def of(cls, namespace: str, core: str) -> "StateKeys":
        if core not in KINDS:
            raise ValueError(f"unknown core {core!r}")
        return cls(namespace, core, f"kg:w:{{{quote(namespace, safe='')}/{core}}}")

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    blob = property(lambda self: self._key("blob"))
    ver = property(lambda self: self._key("ver"))
    hist = property(lambda self: self._key("hist"))
    snaps = property(lambda self: self._key("snaps"))
    pending = property(lambda self: self._key("pending"))
    seq = property(lambda self: self._key("seq"))
    done = property(lambda self: self._key("done"))
    log = property(lambda self: self._key("log"))
    epoch = property(lambda self: self._key("epoch"))
    flag = property(lambda self: self._key("flag"))
    lock = property(lambda self: self._key("lock"))
    crash = property(lambda self: self._key("crash"))
    careful = property(lambda self: self._key("careful"))
    outcomes = property(lambda self: self._key("outcomes"))
    payloads = property(lambda self: self._key("payloads"))
    error = property(lambda self: self._key("error"))

    def event(self, event_id: str) -> str:
        return f"{self.prefix}:ev:{event_id}"

    def wake(self, event_id: str) -> str:
        return f"{self.prefix}:wake:{event_id}"

    @property
    def member(self) -> str:
        """How the state is listed in ``kg:w:states``."""
        return f"{quote(self.namespace, safe='')}/{self.core}"

    @classmethod
    def from_member(cls, member: str | bytes) -> "StateKeys":
        text = member.decode() if isinstance(member, bytes) else member
        ns, _, core = text.rpartition("/")
        return cls.of(unquote(ns), core)


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One stored version of a state: header fields plus the core's serialised state."""

    kind: str
    namespace: str
    version: int
    updates: int
    state: bytes
    written_ms: int

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.state).hexdigest()

    def header(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "namespace": self.namespace,
            "version": self.version,
            "updates": self.updates,
            "sha256": self.sha256,
            "written_ms": self.written_ms,
            "state_schema_version": learn.SCHEMA_VERSION,
        }

    def encode(self) -> bytes:
        head = json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + struct.pack("<I", len(head)) + head + self.state

    @classmethod
    def decode(cls, raw: bytes, namespace: str, kind: str) -> "Record":
        """Parse and check a stored record; any failure is StateCorrupt naming the check."""
        def bad(reason: str) -> StateCorrupt:
            return StateCorrupt(namespace, kind, reason)

        if not isinstance(raw, (bytes, bytearray)) or len(raw) < 8 or raw[:4] != MAGIC:
            raise bad("not a weight record (bad magic)")
        (n,) = struct.unpack("<I", raw[4:8])
        if n > len(raw) - 8:
            raise bad("header length out of range")
        try:
            head = json.loads(raw[8 : 8 + n])
        except (UnicodeDecodeError, ValueError):
            raise bad("header is not valid JSON") from None
        if not isinstance(head, dict) or head.get("schema") != SCHEMA:
            raise bad("unknown record schema")
        if head.get("schema_version") != SCHEMA_VERSION:
            raise bad(f"record schema version {head.get('schema_version')!r} is not {SCHEMA_VERSION}")
        if head.get("kind") != kind or head.get("namespace") != namespace:
            raise bad("record belongs to another state")
        state = bytes(raw[8 + n :])
        if hashlib.sha256(state).hexdigest() != head.get("sha256"):
            raise bad("checksum mismatch")
        try:
            version, updates, written = int(head["version"]), int(head["updates"]), int(head["written_ms"])
        except (KeyError, TypeError, ValueError):
            raise bad("header fields missing") from None
        return cls(kind, namespace, version, updates, state, written)

    def core(self) -> Any:
        """The learning core, checked by ``learn.from_bytes`` (schema, kind, shapes, checksum)."""
        try:
            return learn.from_bytes(self.state, self.kind)
        except StateError as exc:
            raise StateCorrupt(self.namespace, self.kind, str(exc)) from exc

    @classmethod
    def of(cls, core: Any, namespace: str, version: int, updates: int) -> "Record":
        return cls(core.kind, namespace, version, updates, learn.to_bytes(core), now_ms())


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


@lru_cache(maxsize=None)
def _lua(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class WeightStore:
    """The Redis side of learned state; thread-safe (redis-py pools its connections)."""

    def __init__(self, client: redis.Redis, ws: WorkerSettings) -> None:
        self.r = client
        self.ws = ws
        self._scripts = {name: client.register_script(_lua(name))
                         for name in ("enqueue", "enqueue_bulk", "commit", "finish", "release", "steal",
                                      "snapshot")}

    # -- reads ---------------------------------------------------------------------------------
    def version(self, ns: str, core: str) -> int:
        return int(self.r.get(StateKeys.of(ns, core).ver) or 0)

    def epoch(self, ns: str, core: str) -> int:
        return int(self.r.get(StateKeys.of(ns, core).epoch) or 0)

    def load(self, ns: str, core: str) -> Record | None:
        """The current record, checked; None when the state was never initialised."""
        k = StateKeys.of(ns, core)
        pipe = self.r.pipeline(transaction=True)
        pipe.get(k.ver)
        pipe.get(k.blob)
        ver, raw = pipe.execute()
        return self._checked(ns, core, int(ver or 0), raw)

    def _checked(self, ns: str, core: str, version: int, raw: bytes | None) -> Record | None:
        if raw is None:
            if version:
                raise StateCorrupt(ns, core, f"version {version} has no blob")
            return None
        record = Record.decode(raw, ns, core)
        if record.version != version:
            raise StateCorrupt(ns, core, f"blob says version {record.version}, the store {version}")
        return record

    def updates(self, ns: str, core: str) -> int:
        record = self.load(ns, core)
        return 0 if record is None else record.updates

    # -- the queue -----------------------------------------------------------------------------
    def enqueue(self, ns: str, core: str, event_id: str, payload: str, *, epoch: int | None = None,
                trigger: bool = True) -> Enqueued:
        """Append one event (see enqueue.lua); ``epoch`` None accepts any epoch."""
        return self._enqueued(self._enqueue(ns, core, event_id, payload, epoch, trigger, None))

    def _enqueue(self, ns: str, core: str, event_id: str, payload: str, epoch: int | None,
                 trigger: bool, client: Any) -> Any:
        k = StateKeys.of(ns, core)
        return self._scripts["enqueue"](
            keys=[k.pending, k.seq, k.event(event_id), k.flag, k.epoch, STATES_KEY],
            args=[payload, self.ws.event_ttl_s, self._flag_ttl(), "1" if trigger else "0",
                  "*" if epoch is None else str(epoch), k.member],
            client=client,
        )

    @staticmethod
    def _enqueued(out: list) -> Enqueued:
        code = int(out[0])
        if code == 1:
            return Enqueued("accepted", int(out[1]), bool(int(out[2])))
        detail = out[1].decode() if isinstance(out[1], bytes) else str(out[1])
        return Enqueued("duplicate" if code == 0 else "epoch", detail=detail)

    def enqueue_many(self, ns: str, core: str, items: Iterable[tuple[str, str | bytes]], *,
                     epoch: int | None = None) -> list[Enqueued]:
        """Pipelined ``enqueue`` of (event id, payload) pairs: one round trip for all."""
        pipe = self.r.pipeline(transaction=False)
        for event_id, payload in items:
            self._enqueue(ns, core, event_id, payload, epoch, True, pipe)
        return [self._enqueued(out) for out in pipe.execute()]

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

    def set_crash(self, ns: str, core: str, note: dict[str, Any]) -> None:
        """Record what a drain is about to apply; ``commit`` clears it, a crash leaves it."""
        self.r.set(StateKeys.of(ns, core).crash, json.dumps(note), ex=int(self.ws.visibility_timeout_s) * 4)

    def commit(self, ns: str, core: str, *, version: int, done: int, record: Record | None,
               applied: list[Applied], new_epoch: int | None = None,
               outcomes: list[str] = ()) -> tuple[bool, int, int]:
        """Compare-and-set (see commit.lua); returns (written, version, consumed count) now."""
        k = StateKeys.of(ns, core)
        keys = [k.ver, k.blob, k.hist, k.pending, k.done, k.log, k.epoch, k.crash, k.outcomes, k.error,
                k.payloads]
        new_version = record.version if record is not None else version
        ids, logs, results, wake = [], [], [], []
        for a in applied:
            e = a.event
            ids.append(e.id)
            logs.append(f"{e.seq} {e.id} {new_version} {'1' if a.result.get('ok') else '0'}")
            results.append(_ENCODE(a.result))
            wake.append("1" if e.wait else "0")
        args: list[Any] = [version, done, record.encode() if record is not None else b"", len(applied),
                           self.ws.history_keep, self.ws.applied_log_max, self.ws.event_ttl_s,
                           "" if new_epoch is None else new_epoch, self.ws.outcome_log_max, k.prefix,
                           "\n".join(ids), "\n".join(logs), "\n".join(results), "".join(wake),
                           "\n".join(outcomes), now_ms(), self.ws.history_every_ms,
                           "\n".join(a.event.ref for a in applied if a.event.ref)]
        out = self._scripts["commit"](keys=keys, args=args)
        return bool(int(out[0])), int(out[1]), int(out[2])

    def set_careful(self, ns: str, core: str, upto_seq: int) -> None:
        """Apply events up to ``upto_seq`` one at a time (they were in a batch that crashed)."""
        self.r.set(StateKeys.of(ns, core).careful, upto_seq, ex=int(self.ws.visibility_timeout_s) * 4)

    def clear_crash(self, ns: str, core: str) -> None:
        self.r.delete(StateKeys.of(ns, core).crash)

    def clear_flag(self, ns: str, core: str) -> None:
        self.r.delete(StateKeys.of(ns, core).flag)

    def note_error(self, ns: str, core: str, message: str) -> None:
        """Remember why a drain could not apply (shown by ``health`` until the state is fixed)."""
        self.r.set(StateKeys.of(ns, core).error, message)

    def error(self, ns: str, core: str) -> str | None:
        raw = self.r.get(StateKeys.of(ns, core).error)
        return raw.decode() if raw else None

    # -- drain coordination ----------------------------------------------------------------------
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

    # -- registry, dead letters, history --------------------------------------------------------
    def register(self, ns: str, core: str) -> None:
        self.r.sadd(STATES_KEY, StateKeys.of(ns, core).member)

    def states(self) -> list[StateKeys]:
        return sorted((StateKeys.from_member(m) for m in self.r.smembers(STATES_KEY)),
                      key=lambda k: (k.namespace, k.core))

    def dead_letter(self, entry: dict[str, Any]) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.lpush(DEAD_KEY, json.dumps(entry, sort_keys=True))
        pipe.ltrim(DEAD_KEY, 0, DEAD_KEEP - 1)
        pipe.execute()

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(DEAD_KEY, 0, limit - 1)]

    def applied_log(self, ns: str, core: str) -> list[tuple[int, str, int, bool]]:
        """(seq, event id, version, ok) in the order the store applied them."""
        out = []
        for line in self.r.lrange(StateKeys.of(ns, core).log, 0, -1):
            seq, eid, ver, ok = line.decode().split(" ")
            out.append((int(seq), eid, int(ver), ok == "1"))
        return out

    def outcomes(self, ns: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded router outcomes with embeddings, oldest first (the last ``limit``)."""
        start = 0 if limit is None else -limit
        return [unpack_vectors(json.loads(x))
                for x in self.r.lrange(StateKeys.of(ns, "router").outcomes, start, -1)]

    def snapshot(self, ns: str, core: str) -> bool:
        k = StateKeys.of(ns, core)
        return bool(self._scripts["snapshot"](keys=[k.blob, k.snaps], args=[self.ws.snapshots_keep]))

    def history(self, ns: str, core: str) -> list[tuple[str, Record | StateCorrupt]]:
        """Current, rolling history and snapshots, each decoded or the reason it is unusable."""
        k = StateKeys.of(ns, core)
        pipe = self.r.pipeline(transaction=True)
        pipe.get(k.blob)
        pipe.lrange(k.hist, 0, -1)
        pipe.lrange(k.snaps, 0, -1)
        blob, hist, snaps = pipe.execute()
        found: list[tuple[str, Record | StateCorrupt]] = []
        for where, raws in (("current", [blob] if blob else []), ("history", hist), ("snapshot", snaps)):
            for raw in raws:
                try:
                    record = Record.decode(raw, ns, core)
                    record.core()
                    found.append((where, record))
                except StateCorrupt as exc:
                    found.append((where, exc))
        return found

    def rollback(self, ns: str, core: str, to_version: int | None = None) -> tuple[int, Record]:
        """Write an earlier, intact version back as a new version (the version still grows);
        returns (the version restored, the new record).

        Without ``to_version``: the newest intact version older than the current one (or older
        than the current blob's own version when the current blob is unreadable).
        """
        k = StateKeys.of(ns, core)
        for _ in range(20):
            pipe = self.r.pipeline(transaction=True)
            pipe.get(k.ver)
            pipe.get(k.done)
            ver, done = (int(x or 0) for x in pipe.execute())
            if ver == 0:
                raise StateCorrupt(ns, core, "nothing to roll back: the state was never written")
            candidates = [r for where, r in self.history(ns, core)
                          if isinstance(r, Record) and where != "current"]
            if to_version is None:
                pick = next((r for r in sorted(candidates, key=lambda r: -r.version) if r.version < ver), None)
            else:
                pick = next((r for r in candidates if r.version == to_version), None)
            if pick is None:
                wanted = "an intact earlier version" if to_version is None else f"version {to_version}"
                raise StateCorrupt(ns, core, f"no {wanted} in history or snapshots")
            record = Record(pick.kind, ns, ver + 1, pick.updates, pick.state, now_ms())
            ok, _, _ = self.commit(ns, core, version=ver, done=done, record=record, applied=[],
                                   new_epoch=ver + 1)
            if ok:
                return pick.version, record
        raise StateCorrupt(ns, core, "rollback kept losing the race with running drains; stop the workers")
