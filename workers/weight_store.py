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
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis

from kg.config import WorkerSettings
from workers.errors import StateCorrupt
from workers.store_history import HistoryOps
from workers.store_keys import StateKeys
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

    def note_error(self, ns: str, core: str, message: str) -> None:
        """Remember why a drain could not apply (shown by ``health`` until the state is fixed)."""
        self.r.set(StateKeys.of(ns, core).error, message)

    def error(self, ns: str, core: str) -> str | None:
        raw = self.r.get(StateKeys.of(ns, core).error)
        return raw.decode() if raw else None
