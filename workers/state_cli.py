"""``kg state show``, ``rollback``, ``export``, ``import`` and ``inspect``: the operator's side of the
weight store (the state files themselves: :mod:`workers.state_file`)."""

from __future__ import annotations

import json
import sys

from kg.config import Settings
from workers.connect import redis_client
from workers.errors import StateCorrupt
from workers.connect import redis_errors
from workers.store_keys import KINDS
from workers.store_record import Record
from workers.weight_store import WeightStore


def _store(settings: Settings) -> WeightStore:
    return WeightStore(redis_client(settings), settings.workers)


def describe(store: WeightStore, ns: str, kind: str) -> dict:
    """Version, counts, queue and every stored version of one state, each checked."""
    out: dict = {"namespace": ns, "core": kind, "version": store.version(ns, kind),
                 "epoch": store.epoch(ns, kind), "pending": store.depth(ns, kind),
                 "error": store.error(ns, kind), "versions": []}
    for where, item in store.history(ns, kind):
        if isinstance(item, Record):
            out["versions"].append({"where": where, "version": item.version, "updates": item.updates,
                                    "sha256": item.sha256, "written_ms": item.written_ms,
                                    "bytes": len(item.state), "intact": True})
        else:
            out["versions"].append({"where": where, "intact": False, "problem": item.reason})
    return out


def show(settings: Settings, ns: str, core: str | None, as_json: bool = False) -> int:
    with redis_errors():
        store = _store(settings)
        kinds = [core] if core else [k for k in KINDS if store.version(ns, k) or store.depth(ns, k)]
        states = [describe(store, ns, k) for k in kinds]
    if as_json:
        print(json.dumps(states, indent=2))
    else:
        if not states:
            print(f"namespace {ns!r} has no learned state")
        for st in states:
            print(f"{st['core']:<10} version {st['version']:<6} epoch {st['epoch']:<6} "
                  f"pending {st['pending']}" + (f"  ERROR: {st['error']}" if st["error"] else ""))
            for v in st["versions"]:
                if v["intact"]:
                    print(f"  {v['where']:<9} v{v['version']:<6} updates {v['updates']:<8} "
                          f"sha256 {v['sha256'][:16]}  {v['bytes']} bytes")
                else:
                    print(f"  {v['where']:<9} UNUSABLE: {v['problem']}")
    bad = any(not v["intact"] for st in states for v in st["versions"] if v["where"] == "current")
    return 1 if bad else 0


def rollback(settings: Settings, ns: str, core: str, to_version: int | None) -> int:
    with redis_errors():
        store = _store(settings)
        before = store.version(ns, core)
        try:
            restored, record = store.rollback(ns, core, to_version)
        except StateCorrupt as exc:
            print(f"kg state rollback: {exc.reason}", file=sys.stderr)
            return 1
        if store.depth(ns, core) and store.raise_flag(ns, core):
            from workers.app import publisher

            publisher(settings).send_task("kg.drain", args=[ns, core])
    print(f"{core} state of namespace {ns!r}: version {before} -> {record.version} "
          f"(the content of version {restored}, {record.updates} updates, sha256 {record.sha256[:16]})")
    return 0


def export(settings: Settings, ns: str, cores: list[str] | None, path: str) -> int:
    from workers.state_file import save_state

    written = save_state(ns, path, cores=cores, settings=settings)
    for kind, part in sorted(written.parts.items()):
        print(f"{kind:<10} version {part.version:<6} updates {part.updates:<8} sha256 {part.sha256[:16]}  "
              f"{len(part.state)} bytes")
    print(f"namespace {ns!r}: {len(written.parts)} core(s) written to {path}")
    return 0


def import_(settings: Settings, path: str, ns: str | None, replace: bool) -> int:
    from workers.state_file import load_state

    loaded = load_state(path, ns, replace=replace, settings=settings)
    for line in loaded.lines():
        print(line)
    print(f"namespace {loaded.namespace!r}: {len(loaded.file.parts)} core(s) imported from {path}")
    return 0


def inspect(path: str) -> int:
    from workers.state_file import read_state_file

    print(json.dumps(read_state_file(path).manifest(), indent=2, sort_keys=True))
    return 0
