"""The record-keeping side of the weight store: the registry of states, dead letters, the applied
log, router outcomes, snapshots, history and rollback.

A mixin of :class:`workers.weight_store.WeightStore`; ``rollback`` writes through its ``commit``.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from kg.config import WorkerSettings
from workers.errors import StateCorrupt
from workers.events import unpack_vectors
from workers.store_keys import DEAD_KEY, STATES_KEY, StateKeys
from workers.store_record import Record, now_ms

DEAD_KEEP = 1000


class HistoryOps:
    """Registry, dead letters, logs, snapshots, history and rollback."""

    r: redis.Redis
    ws: WorkerSettings
    _scripts: dict[str, Any]

    def states(self) -> list[StateKeys]:
        """Every state an event was ever queued for (``enqueue*.lua`` lists it in ``kg:w:states``)."""
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
