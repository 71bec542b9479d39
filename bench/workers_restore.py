"""Time from process start to the first answer from restored state, against replaying the history.

    python -m bench.workers_restore [--trajectories 200] [--dim 384] [--runs 10]

Setup (not timed): a redis-server as ``kg up`` runs it and one worker; an adapter trained by
``--trajectories`` feedback events and a router by as many outcomes, through the workers.
Then, timed:

- **fresh process**: ``python -c`` that builds a ``Session`` and answers ``route`` and
  ``apply_adapter``; the parent measures from ``Popen`` to the answer on stdout, and the child
  reports how much of that was interpreter start + imports and how much the restore (connect,
  GET version, GET blob, check SHA-256 and schema, deserialise, answer);
- **restore in a running process**: a new ``Session`` (cold cache) answering the same reads;
- **replay instead**: rebuilding the same state by applying the whole history again in-process
  (the cores' own speed; the engine users complained about took ~30 s for 200 trajectories).

The answers of the fresh process are compared with the running service's (bit-identical).
Results: ``bench/results/workers_restore.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from bench._common import save

CHILD = r"""
import json, sys, time
t_imports = time.perf_counter()
from kg.dispatch import Session
t0 = time.perf_counter()
req = json.loads(sys.argv[1])
with Session() as s:
    route = s.dispatch(req["route"])
    adapter = s.dispatch(req["apply_adapter"])
t1 = time.perf_counter()
print(json.dumps({"imports_s": t0 - t_imports, "restore_s": t1 - t0, "route": route, "adapter": adapter}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=200)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    from kg.config import Settings
    from kg.dispatch import Session
    from workers.cores import replay
    from workers.localproc import scratch_service
    from workers.verbs import learning
    from workers.weight_store import Event

    ns, n, dim = "restore", args.trajectories, args.dim
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((n, dim)).tolist()
    with scratch_service("restore") as env:
        session = Session(Settings.from_env(env))
        d = session.dispatch
        targets = ["small", "medium", "large"]
        assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": targets, "in_dim": dim}})["ok"]
        assert d({"verb": "init_router", "body": {"namespace": ns, "targets": targets, "in_dim": dim}})["ok"]
        for i, x in enumerate(xs):
            q = float(rng.random())
            assert d({"verb": "feedback", "async": i < n - 1, "body": {
                "namespace": ns, "embedding": x, "model": targets[i % 3], "payload": {"quality": q},
                "now_ms": i}})["ok"]
            assert d({"verb": "record_outcome", "async": i < n - 1, "body": {
                "namespace": ns, "target": targets[i % 3], "quality": q, "embedding": x}})["ok"]
        probe = rng.standard_normal(dim).tolist()
        reqs = {"route": {"verb": "route", "body": {"namespace": ns, "embedding": probe}},
                "apply_adapter": {"verb": "apply_adapter", "body": {"namespace": ns, "embedding": probe}}}
        expected = {k: d(v) for k, v in reqs.items()}
        blob_bytes = {c: len(learning(session).store.load(ns, c).encode()) for c in ("instant", "router")}

        fresh = []
        child_env = dict(env, KG_HOME=env["KG_HOME"])
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(reqs)], env=child_env,
                                 capture_output=True, text=True, timeout=120, check=True)
            total = time.perf_counter() - t0
            got = json.loads(out.stdout)
            assert got["route"] == expected["route"] and got["adapter"] == expected["apply_adapter"], got
            fresh.append({"total_s": total, "imports_s": got["imports_s"], "restore_s": got["restore_s"]})

        warm = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            with Session(Settings.from_env(env)) as s2:
                assert s2.dispatch(reqs["route"]) == expected["route"]
                assert s2.dispatch(reqs["apply_adapter"]) == expected["apply_adapter"]
            warm.append(time.perf_counter() - t0)

        store = learning(session).store
        events = {c: [] for c in ("instant", "router")}
        for c in events:
            for seq, eid, _, _ in store.applied_log(ns, c):
                events[c].append(Event(seq, eid, store.result(ns, c, eid)["verb"], {}))
        # rebuild the bodies as queued: init + the same trajectories, in the same order
        bodies = {"instant": [{"targets": targets, "in_dim": dim, "lr_min": 1e-3}] + [
            {"embedding": x, "model": targets[i % 3], "payload": {"quality": 0.0}, "now_ms": i}
            for i, x in enumerate(xs)],
            "router": [{"targets": targets, "in_dim": dim}] + [
            {"target": targets[i % 3], "quality": 0.0, "embedding": x} for i, x in enumerate(xs)]}
        rng2 = np.random.default_rng(0)
        rng2.standard_normal((n, dim))
        for i in range(n):
            q = float(rng2.random())
            bodies["instant"][i + 1]["payload"]["quality"] = q
            bodies["router"][i + 1]["quality"] = q
        t0 = time.perf_counter()
        rebuilt = {c: replay(c, [Event(e.seq, e.id, e.verb, b) for e, b in zip(events[c], bodies[c])]).core
                   for c in events}
        replay_s = time.perf_counter() - t0
        from learn import to_bytes

        assert all(to_bytes(rebuilt[c]) == store.load(ns, c).state for c in rebuilt), "replay differs"
        session.close()

    def med(xs: list[float]) -> float:
        return float(np.median(xs))

    rows = [
        {"what": "fresh process: Popen to first answers (route + apply_adapter)",
         "median_ms": med([f["total_s"] for f in fresh]) * 1e3},
        {"what": "  of which interpreter start + imports (numpy, pydantic, redis, neo4j)",
         "median_ms": (med([f["total_s"] for f in fresh]) - med([f["restore_s"] for f in fresh])) * 1e3},
        {"what": "  of which restore: connect, load, check, deserialise, answer",
         "median_ms": med([f["restore_s"] for f in fresh]) * 1e3},
        {"what": "restore in a running process (new Session, cold cache)", "median_ms": med(warm) * 1e3},
        {"what": f"replaying the {n} trajectories + {n} outcomes instead", "median_ms": replay_s * 1e3},
    ]
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "dim": dim, "trajectories": n,
            "runs": args.runs, "blob_bytes": blob_bytes, "load_average": list(os.getloadavg()),
            "target": "first answer from restored state under 50 ms",
            "reference": "~30 s to replay 200 trajectories in the engine users complained about"}
    path = save("workers_restore", {"meta": meta, "rows": rows, "fresh": fresh, "warm_s": warm})
    print(f"\nrestore of an adapter + router trained on {n} trajectories (dim {dim}; blobs {blob_bytes} bytes), "
          f"median of {args.runs}, load {meta['load_average'][0]:.1f}\n")
    print("| what | median ms |")
    print("|---|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['median_ms']:.1f} |")
    print("\nanswers of every fresh process were bit-identical to the running service's")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
