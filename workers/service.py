"""The caller's side of learning: queue updates for the workers, read the current blobs in-process.

One :class:`Learning` per ``Session`` (``session.learning``); thread-safe.

- **Updates** are checked against the core of the current *epoch* (the version of the last
  ``init_*``), then appended to the state's queue by ``enqueue.lua``, which refuses the event if
  the epoch moved meanwhile (then the check runs again on the new core). By default the call waits
  for the worker's result (one BLPOP); with ``async`` it returns a ticket at once.
- **Reads** (``apply_adapter``, ``route``, ``ewc_penalty``, ``attend``) use a decoded core cached
  per state and revalidated on every call with one GET of the version key, so a read never sees a
  state older than the last update whose result was returned. The GET is sent before the read
  computes on the cached core and its reply read after (:meth:`Learning.read`,
  :mod:`workers.freshness`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Callable, TypeVar
from urllib.parse import quote, unquote

import redis

from kg.config import Settings
from kg.errors import InvalidInput, KgError, NotFound
from workers.connect import redis_client, redis_errors
from workers.errors import NotInitialised, UpdateFailed, WorkerTimeout
from workers.events import event_bytes
from workers.freshness import Probes
from workers.store_keys import KINDS, StateKeys
from workers.store_record import Record
from workers.weight_store import WeightStore

MAX_EPOCH_RETRIES = 5
READ_CACHE_MAX_BYTES = 128 << 20
"""State bytes one process keeps decoded for reads (each state at most 40 MiB, learn.limits)."""
T = TypeVar("T")
log = logging.getLogger(__name__)


def make_ticket(ns: str, core: str, event_id: str) -> str:
    return f"{core}:{_quoted(ns)}:{event_id}"


@lru_cache(maxsize=4096)
def _quoted(ns: str) -> str:
    return quote(ns, safe="")


@lru_cache(maxsize=4096)
def _ver_key(ns: str, core: str) -> str:
    return StateKeys.of(ns, core).ver


def parse_ticket(ticket: str) -> tuple[str, str, str]:
    core, _, rest = ticket.partition(":")
    ns, _, event_id = rest.partition(":")
    if core not in KINDS or not ns or not event_id:
        raise InvalidInput("ticket", "is not a ticket of this service")
    return unquote(ns), core, event_id


class ReadCache:
    """The decoded current states of one process, by (namespace, core): at most ``max_bytes`` of
    state, the oldest put first out, so that reads of many large states keep memory bounded.

    ``get`` is a plain dict lookup (the read path); ``put`` returns the keys it evicted.

    >>> cache = ReadCache(max_bytes=10)
    >>> state = lambda n: Current(Record("ewc", "ns", 1, 0, b"x" * n, 0), None)
    >>> cache.put(("a", "ewc"), state(6)), cache.put(("b", "ewc"), state(6))
    ([], [('a', 'ewc')])
    >>> cache.get(("a", "ewc")) is None, cache.bytes
    (True, 6)
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = READ_CACHE_MAX_BYTES if max_bytes is None else max_bytes
        self.bytes = 0
        self._items: dict[tuple[str, str], Current] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Current | None:
        return self._items.get(key)

    def put(self, key: tuple[str, str], cur: Current) -> list[tuple[str, str]]:
        evicted = []
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= len(old.record.state)
            self._items[key] = cur
            self.bytes += len(cur.record.state)
            while self.bytes > self.max_bytes and len(self._items) > 1:
                gone = next(iter(self._items))
                self.bytes -= len(self._items.pop(gone).record.state)
                evicted.append(gone)
        return evicted


@dataclass(frozen=True)
class Current:
    """A state as a read sees it: the record (version, update count) and the decoded core."""

    record: Record
    core: Any

    @property
    def version(self) -> int:
        return self.record.version

    @cached_property
    def seed_hash(self) -> Any:
        """SHA-256 fed with the state's checksum: the prefix of every exploration seed of
        ``route`` on this state (copied per request)."""
        return hashlib.sha256(self.record.sha256.encode())


class Learning:
    """Queue updates, wait for or poll their results, and read current cores."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.ws = settings.workers
        self._client = client
        self._store: WeightStore | None = None
        self._probes: Probes | None = None
        self._lock = threading.Lock()
        self._current = ReadCache()
        self._shapes: dict[tuple[str, str], tuple[int, Any]] = {}

    # -- connections ----------------------------------------------------------------------------
    @property
    def store(self) -> WeightStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    client = self._client or redis_client(self.settings)
                    self._store = WeightStore(client, self.ws)
        return self._store

    def close(self) -> None:
        if self._store is not None and self._client is None:
            self._store.r.close()
        if self._probes is not None:
            self._probes.close()

    @property
    def probes(self) -> Probes:
        """Dedicated connections for version GETs (no pool lookup, no retry wrapper: the
        cheapest round trip redis-py offers)."""
        if self._probes is None:
            with self._lock:
                if self._probes is None:
                    pool = self.store.r.connection_pool
                    self._probes = Probes(redis.ConnectionPool(connection_class=pool.connection_class,
                                                               **pool.connection_kwargs))
        return self._probes

    def _version(self, ns: str, core: str) -> int:
        """The state's version: the one round trip of a read with a warm cache."""
        probe = self.probes.take()
        try:
            version = probe.get(StateKeys.of(ns, core).ver)
        except BaseException:
            probe.close()
            raise
        self.probes.give(probe)
        return version

    def publish_drain(self, ns: str, core: str) -> None:
        """Send the drain task for a state whose flag this caller raised.

        If the broker refuses, the flag is dropped again so that the next event (or beat's
        sweep) triggers a drain; the event itself is already safely queued.
        """
        from workers.app import publisher

        try:
            publisher(self.settings).send_task("kg.drain", args=[ns, core])
        except Exception:  # noqa: BLE001 - kombu/redis errors of many kinds
            log.warning("could not publish the drain of %s/%s; leaving it to the next event or the sweep",
                        ns, core, exc_info=True)
            with contextlib.suppress(redis.RedisError):
                self.store.clear_flag(ns, core)

    # -- reads ------------------------------------------------------------------------------------
    def current(self, ns: str, core: str) -> Current | None:
        """The state's current core (None when never initialised), revalidated by version."""
        store = self.store
        with redis_errors():
            version = self._version(ns, core)
            hit = self._current.get((ns, core))
            if hit is not None and hit.version == version:
                return hit
            if version == 0:
                return None
            record = store.load(ns, core)
        if record is None:
            return None
        return self._keep(ns, core, Current(record, record.core()))

    def read(self, ns: str, core: str, answer: Callable[[Current | None], T]) -> T:
        """``answer(current)`` on the current state (None when never initialised).

        With a cached core, the version GET is sent first and received after ``answer`` ran on
        the cache (see :mod:`workers.freshness`): the answer, or the error ``answer`` raised
        about the input, is kept only if the cache is the current version; otherwise it is
        computed again on the state loaded now.
        """
        hit = self._current.get((ns, core))
        if hit is not None:
            done, out = self._overlapped(hit, _ver_key(ns, core), answer)
            if done:
                return out
        return answer(self.current(ns, core))

    def _overlapped(self, hit: Current, key: str, answer: Callable[[Current], T]) -> tuple[bool, Any]:
        probe = self.probes.take()
        try:
            probe.send(key)
        except redis.RedisError:
            probe.close()
            return False, None  # the plain path reconnects and reports
        try:
            out, error = answer(hit), None
        except KgError as exc:  # bad input judged against the cached core: valid only if current
            out, error = None, exc
        except BaseException:
            probe.close()  # its reply was never read
            raise
        try:
            version = probe.receive()
        except redis.RedisError:
            probe.close()
            return False, None
        self.probes.give(probe)
        if version != hit.version:
            return False, None
        if error is not None:
            raise error
        return True, out

    def verify(self, ns: str, core: str) -> Current | None:
        """Load and check the stored blob now, bypassing the cache (``health``)."""
        with redis_errors():
            record = self.store.load(ns, core)
        if record is None:
            return None
        return self._keep(ns, core, Current(record, record.core()))

    def _keep(self, ns: str, core: str, cur: Current) -> Current:
        for gone in self._current.put((ns, core), cur):
            self._shapes.pop(gone, None)  # holds the same core: let it go too
        return cur

    def require(self, ns: str, core: str, init_verb: str) -> Current:
        cur = self.current(ns, core)
        if cur is None:
            raise NotInitialised("namespace", f"has no {core} state; call {init_verb} first")
        return cur

    # -- updates ----------------------------------------------------------------------------------
    def _shape(self, ns: str, core: str, refresh: bool) -> tuple[int, Any]:
        """(epoch, core) to check an update against; only a present core is trusted from cache."""
        hit = self._shapes.get((ns, core))
        if hit is not None and hit[1] is not None and not refresh:
            return hit
        with redis_errors():
            epoch = self.store.epoch(ns, core)
        cur = self.current(ns, core)
        shape = (epoch, None if cur is None else cur.core)
        self._shapes[(ns, core)] = shape
        return shape

    def submit(self, ns: str, core: str, verb: str, body: dict[str, Any], *, event_id: str | None = None,
               wait: bool = True, check: Callable[[Any], None] | None = None,
               epoch_bound: bool = True) -> dict[str, Any]:
        """Queue one update; wait for its result (the result's ``data``) or return a ticket.

        ``check(core)`` validates the body against the current core (None if uninitialised) and
        raises naming the field; ``epoch_bound`` makes the queue refuse the event if the core
        was re-initialised after the check.
        """
        eid = event_id or uuid.uuid4().hex
        payload = event_bytes(eid, verb, body, wait)
        for attempt in range(MAX_EPOCH_RETRIES):
            epoch, shape = self._shape(ns, core, refresh=attempt > 0)
            if check is not None:
                check(shape)
            with redis_errors():
                out = self.store.enqueue(ns, core, eid, payload, epoch=epoch if epoch_bound else None)
            if out.status != "epoch":
                break
        else:
            raise InvalidInput("namespace", f"the {core} state keeps being re-initialised; retry")
        ticket = make_ticket(ns, core, eid)
        if out.status == "accepted" and out.publish:
            self.publish_drain(ns, core)
        if not wait:
            return {"ticket": ticket, "status": "queued" if out.status == "accepted" else "duplicate",
                    "event_id": eid}
        with redis_errors():
            result = self.store.result(ns, core, eid) if out.status == "duplicate" else None
            if result is None or "status" in result:
                result = self.store.wait(ns, core, eid, self.ws.wait_timeout_s)
        if result is None:
            raise WorkerTimeout(ticket, self.ws.wait_timeout_s)
        return self.unwrap(result)

    def submit_many(self, ns: str, core: str, verb: str, items: list[tuple[str | None, dict[str, Any]]], *,
                    check: Callable[[Any], None] | None = None, epoch_bound: bool = True,
                    wait: bool = False) -> list[dict[str, Any]]:
        """Queue many events of one verb, in order, in one round trip (``enqueue_bulk.lua``).

        ``items`` are (event id or None, body); ``check(core)`` validates all of them first.
        Events refused because the core was re-initialised meanwhile are checked again and
        re-sent (the others are not sent twice: their ids are already taken). Returns one
        ``{ticket, status, event_id}`` per item (status ``queued`` or ``duplicate``); with
        ``wait`` each also carries the event's stored ``result`` once all are applied.
        """
        base = uuid.uuid4().hex
        ids = [eid or f"{base}.{i}" for i, (eid, _) in enumerate(items)]
        last = len(ids) - 1
        # only the last event wakes the caller: one state's events are applied in arrival order
        payloads = [event_bytes(eid, verb, body, wait and i == last)
                    for i, (eid, (_, body)) in enumerate(zip(ids, items))]
        status: list[str | None] = [None] * len(ids)
        todo = list(range(len(ids)))
        for attempt in range(MAX_EPOCH_RETRIES):
            epoch, shape = self._shape(ns, core, refresh=attempt > 0)
            if check is not None:
                check(shape)
            with redis_errors():
                out = self.store.enqueue_bulk(ns, core, [(ids[i], payloads[i]) for i in todo],
                                              epoch=epoch if epoch_bound else None)
            for i, accepted in zip(todo, out.accepted):
                status[i] = None if accepted is None else ("queued" if accepted else "duplicate")
            if out.publish:
                self.publish_drain(ns, core)
            todo = [i for i in todo if status[i] is None]
            if not todo:
                break
        else:
            raise InvalidInput("namespace", f"the {core} state keeps being re-initialised; retry")
        tickets = [{"ticket": make_ticket(ns, core, eid), "status": st, "event_id": eid}
                   for eid, st in zip(ids, status)]
        if wait:
            for ticket, result in zip(tickets, self._await_all(ns, core, ids, status)):
                ticket["result"] = result
        return tickets

    def _await_all(self, ns: str, core: str, ids: list[str], status: list[str | None]) -> list[dict]:
        """The results of a bulk's events: wait for the last queued one (the events before it in
        the same queue are applied by then), then read all of them in one round trip."""
        queued = [i for i, st in enumerate(status) if st == "queued"]
        timeout = self.ws.wait_timeout_s
        with redis_errors():
            if queued and self.store.wait(ns, core, ids[queued[-1]], timeout) is None:
                raise WorkerTimeout(make_ticket(ns, core, ids[queued[-1]]), timeout)
            results = self.store.results(ns, core, ids)
            for i, result in enumerate(results):
                if result is None or "status" in result:  # a duplicate of an event still queued
                    results[i] = self.store.wait(ns, core, ids[i], timeout)
                    if results[i] is None:
                        raise WorkerTimeout(make_ticket(ns, core, ids[i]), timeout)
        return results

    @staticmethod
    def unwrap(result: dict[str, Any]) -> dict[str, Any]:
        """A stored result as a verb answers it: the data, or the error as ok: false."""
        if not result.get("ok"):
            raise UpdateFailed(result.get("error", "update failed"))
        return dict(result.get("data") or {}, version=result["version"], event_id=result["event_id"])

    def poll(self, ticket: str) -> dict[str, Any]:
        ns, core, event_id = parse_ticket(ticket)
        with redis_errors():
            result = self.store.result(ns, core, event_id)
        if result is None:
            raise NotFound("ticket", "is unknown or its result expired")
        if "status" in result:
            return {"status": "pending", "ticket": ticket}
        out = {"status": "applied" if result.get("ok") else "failed", "ticket": ticket,
               "version": result.get("version")}
        if result.get("ok"):
            out["data"] = result.get("data")
        else:
            out["error"] = result.get("error")
        return out
