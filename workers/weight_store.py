"""Learned state as versioned blobs in Redis: one per (namespace, core), written by compare-and-set.

:class:`WeightStore` is the Redis side of learned state, split by job:

- :mod:`workers.store_keys`: the key layout of a state (one hash tag per state);
- :mod:`workers.store_record`: the record codec (header, checksum, the core's state);
- :mod:`workers.store_queue`: the event queue, drain coordination (flag, lock, crash notes) and
  tickets (results and waiting on them);
- :mod:`workers.store_history`: registry, dead letters, logs, snapshots, history and rollback;
- here: reads of the current record and the compare-and-set ``commit``.

Every write is one Lua script (EVALSHA, reloaded on NOSCRIPT by redis-py's ``Script``), so the
blob, the version, the consumed events and their results change together or not at all.

>>> [name for name in WeightStore.SCRIPTS if not (LUA_DIR / f"{name}.lua").is_file()]  # each one ships
[]
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import redis

from kg.config import WorkerSettings
from kg.errors import Conflict
from workers.errors import StateCorrupt
from workers.store_history import HistoryOps
from workers.store_keys import STATES_KEY, StateKeys
from workers.store_queue import Applied, QueueOps
from workers.store_record import Record, now_ms

LUA_DIR = Path(__file__).resolve().parent / "lua"
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # one encoder, not one per call


@lru_cache(maxsize=None)
def _lua(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class WeightStore(QueueOps, HistoryOps):
    """The Redis side of learned state; thread-safe (redis-py pools its connections)."""

    SCRIPTS = ("enqueue", "enqueue_bulk", "commit", "finish", "release", "steal", "snapshot")

    def __init__(self, client: redis.Redis, ws: WorkerSettings) -> None:
        self.r = client
        self.ws = ws
        self._scripts = {name: client.register_script(_lua(name)) for name in self.SCRIPTS}

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

    def load_many(self, ns: str, cores: list[str]) -> dict[str, Record | None]:
        """The current records of several states of a namespace, read in one transaction (so one
        moment of all of them), each checked like ``load``."""
        keys = [StateKeys.of(ns, core) for core in cores]
        pipe = self.r.pipeline(transaction=True)
        for k in keys:
            pipe.get(k.ver)
            pipe.get(k.blob)
        out = pipe.execute()
        return {core: self._checked(ns, core, int(out[2 * i] or 0), out[2 * i + 1])
                for i, core in enumerate(cores)}

    def _checked(self, ns: str, core: str, version: int, raw: bytes | None) -> Record | None:
        if raw is None:
            if version:
                raise StateCorrupt(ns, core, f"version {version} has no blob")
            return None
        record = Record.decode(raw, ns, core)
        if record.version != version:
            raise StateCorrupt(ns, core, f"blob says version {record.version}, the store {version}")
        return record

    def commit(self, ns: str, core: str, *, version: int, done: int, record: Record | None,
               applied: list[Applied], new_epoch: int | None = None,
               outcomes: list[str] = ()) -> tuple[bool, int, int]:
        """Compare-and-set (see commit.lua); returns (written, version, consumed count) now."""
        keys, args = self._commit_call(ns, core, version=version, done=done, record=record,
                                       applied=applied, new_epoch=new_epoch, outcomes=outcomes)
        out = self._scripts["commit"](keys=keys, args=args)
        return bool(int(out[0])), int(out[1]), int(out[2])

    def _commit_call(self, ns: str, core: str, *, version: int, done: int, record: Record | None,
                     applied: list[Applied], new_epoch: int | None,
                     outcomes: list[str]) -> tuple[list[str], list[Any]]:
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
        return keys, args

    def commit_states(self, ns: str, records: Mapping[str, Record],
                      check: Callable[[dict[str, int]], None]) -> dict[str, int]:
        """Write ``records`` (by core, their versions ignored) as the new versions of several states of
        one namespace, all or none; returns the versions they replaced (0: none).

        The versions and consumed counts of every state are WATCHed and read, ``check(versions)``
        may refuse (raise) before anything is written, then one MULTI/EXEC keeps each current blob as
        a snapshot (for ``kg state rollback``, whatever ``KG_STATE_HISTORY_EVERY_MS`` says), runs
        commit.lua (the compare-and-set of every update) with each record at the next version and
        its epoch, and lists the state in ``kg:w:states``. A write by anyone else in between aborts
        the EXEC, which writes nothing; the whole is then read and checked again. One transaction
        spans several hash slots: fine on one Redis server, which is what the service runs on.
        """
        kinds = sorted(records)
        keys = [StateKeys.of(ns, kind) for kind in kinds]
        watched = [key for k in keys for key in (k.ver, k.done, k.blob)]
        for _ in range(20):
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*watched)
                    found = {kind: (int(pipe.get(k.ver) or 0), int(pipe.get(k.done) or 0))
                             for kind, k in zip(kinds, keys)}
                    check({kind: ver for kind, (ver, _) in found.items()})
                    pipe.multi()
                    for kind, k in zip(kinds, keys):
                        ver, done = found[kind]
                        record = replace(records[kind], namespace=ns, version=ver + 1, written_ms=now_ms())
                        self._scripts["snapshot"](keys=[k.blob, k.snaps], args=[self.ws.snapshots_keep],
                                                  client=pipe)
                        call_keys, args = self._commit_call(ns, kind, version=ver, done=done, record=record,
                                                            applied=[], new_epoch=ver + 1, outcomes=[])
                        self._scripts["commit"](keys=call_keys, args=args, client=pipe)
                        pipe.sadd(STATES_KEY, k.member)
                    out = pipe.execute()
                except redis.WatchError:
                    continue
            written = out[1::3]
            if not all(int(w[0]) for w in written):  # cannot happen under WATCH; say so if it does
                raise RuntimeError(f"commit.lua refused a watched write of namespace {ns!r}")
            return {kind: ver for kind, (ver, _) in found.items()}
        raise Conflict("namespace", "its states kept changing while being written (running drains?); "
                                    "try again, or stop the workers")

    def note_error(self, ns: str, core: str, message: str) -> None:
        """Remember why a drain could not apply (shown by ``health`` until the state is fixed)."""
        self.r.set(StateKeys.of(ns, core).error, message)

    def error(self, ns: str, core: str) -> str | None:
        raw = self.r.get(StateKeys.of(ns, core).error)
        return raw.decode() if raw else None
