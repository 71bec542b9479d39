"""Time from process start to the first answer from restored state, against replaying the history.

    python -m bench.workers_restore [--trajectories 200] [--dim 384] [--runs 10]

Setup (not timed): a redis-server as ``kg up`` runs it and one worker; an adapter trained by
``--trajectories`` feedback events and a router by as many outcomes, through the workers.
Then, timed:

- **fresh process**: ``python -c`` that builds a ``Session`` and answers ``route`` and
  ``apply_adapter``, from ``Popen`` to the moment both answers are there, split into interpreter
  start, imports (``from service.root import Session``) and the restore (connect, GET version,
  GET blob, check SHA-256 and schema, deserialise, answer). Parent and child read the same clock
  (``time.monotonic``, system-wide on Linux). Each part is also given as the child's CPU time
  (user + sys): the process is single-threaded (``OPENBLAS_NUM_THREADS=1``) and its round trips
  are short, so on a shared machine its CPU time is the better estimate of what it takes alone;
- **the same with bytecode cached**: as above, but with the project's compiled modules kept in a
  scratch ``PYTHONPYCACHEPREFIX`` (filled by one untimed run), as an installed service has them;
- **floors**: in the same runs, ``python -c`` processes that only import numpy, and numpy +
  redis + pydantic's ``BaseModel`` + safetensors (what a read cannot do without), from ``Popen``
  to their first statement after the imports;
- **forked from a preloaded parent**: a parent process that has done the imports and opened
  nothing forks a child for each run, which builds a ``Session`` and answers the same reads; timed
  from just before ``fork`` to both answers. This is how the Celery prefork pool replaces a killed
  worker child, and how a preloading server (``gunicorn --preload`` style) restarts a worker: the
  interpreter start and the imports are paid once by the parent, not by each restart;
- **``kg serve --processes 1``, kill -9 of the serving process**: a real ``kg serve`` supervisor
  (:mod:`service.prefork`) against the same redis-server, warmed with one request; each run
  sends SIGKILL to its serving process and at once a ``route`` request on a new connection (it
  waits in the listening socket's backlog, which the supervisor holds), timed from the kill to
  the answer, which the replacement gives from restored state (checked against the running
  service's). Between runs the replacement is left to live past the supervisor's crash-loop
  window (1 s);
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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import save

CHILD = r"""
import json, sys, time
marks = {"started": (time.monotonic(), time.process_time())}
from service.root import Session
marks["imported"] = (time.monotonic(), time.process_time())
req = json.loads(sys.argv[1])
with Session() as s:
    route = s.dispatch(req["route"])
    adapter = s.dispatch(req["apply_adapter"])
    marks["answered"] = (time.monotonic(), time.process_time())
heavy = [m for m in ("neo4j", "celery", "pydantic", "numpy", "redis.asyncio") if m in sys.modules]
print(json.dumps({"marks": marks, "heavy_modules": heavy, "route": route, "adapter": adapter}))
"""
PRELOADED_PARENT = r"""
import json, os, sys, time
from service.root import Session
req = json.loads(sys.argv[1])
for _ in sys.stdin:  # one forked child per line; the parent itself never connects
    forked_at = time.monotonic()
    pid = os.fork()
    if pid == 0:
        with Session() as s:
            route = s.dispatch(req["route"])
            adapter = s.dispatch(req["apply_adapter"])
        done = (time.monotonic(), time.process_time())  # a forked child's CPU clock starts at 0
        sys.stdout.write(json.dumps({"forked_at": forked_at, "done": done, "route": route, "adapter": adapter}) + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
"""
FLOORS = {"numpy": "import numpy",
          "numpy, redis, pydantic's BaseModel, safetensors":
              "import numpy, redis, safetensors.numpy\nfrom pydantic import BaseModel"}
FLOOR_CHILD = "import json, time\n{imports}\nprint(json.dumps([time.monotonic(), time.process_time()]))"


def run_child(code: str, args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(monotonic time just before ``Popen``, the child's stdout)."""
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return t0, out.stdout


def fresh_answers(reqs: dict, expected: dict, env: dict[str, str]) -> dict[str, Any]:
    """One fresh process answering ``reqs`` (checked against ``expected``): where its wall and CPU
    time went (``<part>_s`` and ``<part>_cpu_s``)."""
    t0, out = run_child(CHILD, [json.dumps(reqs)], env)
    got = json.loads(out)
    assert got["route"] == expected["route"] and got["adapter"] == expected["apply_adapter"], got
    (started, cpu0), (imported, cpu1), (answered, cpu2) = (got["marks"][k] for k in ("started", "imported", "answered"))
    return {"total_s": answered - t0, "start_s": started - t0, "imports_s": imported - started,
            "restore_s": answered - imported, "total_cpu_s": cpu2, "start_cpu_s": cpu0,
            "imports_cpu_s": cpu1 - cpu0, "restore_cpu_s": cpu2 - cpu1, "heavy_modules": got["heavy_modules"]}


def forked_answers(reqs: dict, expected: dict, env: dict[str, str], runs: int) -> list[dict[str, float]]:
    """``runs`` children forked from one preloaded parent, each answering ``reqs`` (checked)."""
    parent = subprocess.Popen([sys.executable, "-c", PRELOADED_PARENT, json.dumps(reqs)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = []
    try:
        for _ in range(runs):
            parent.stdin.write("\n")
            parent.stdin.flush()
            got = json.loads(parent.stdout.readline())
            assert got["route"] == expected["route"] and got["adapter"] == expected["apply_adapter"], got
            (done, cpu) = got["done"]
            out.append({"total_s": done - got["forked_at"], "total_cpu_s": cpu})
    finally:
        parent.stdin.close()
        parent.wait(timeout=60)
    return out


def serve_restarts(reqs: dict, expected: dict, env: dict[str, str], runs: int, log: Path) -> list[float]:
    """Seconds from SIGKILL of ``kg serve --processes 1``'s serving process to the answer of a
    ``route`` sent right after it (checked against ``expected``), ``runs`` times."""
    from bench._procs import Serve, post, wait_for
    from service.prefork import MIN_UPTIME_S

    server = Serve(env, 1, log).start()
    try:
        (child,) = server.wait_ready()
        assert post(server.port, reqs["route"]) == expected["route"]  # warm: the supervisor is idle
        out = []
        for _ in range(runs):
            time.sleep(MIN_UPTIME_S + 0.2)  # not a crash loop: the process lived past the window
            t0 = time.monotonic()
            os.kill(child, signal.SIGKILL)
            got = post(server.port, reqs["route"])
            out.append(time.monotonic() - t0)
            assert got == expected["route"], got
            (child,) = wait_for(lambda: server.replaced({child}), 30, "the replacement")
        return out
    finally:
        code = server.stop()
        assert code == 0, f"kg serve exited with {code}: {log.read_text()[-2000:]}"


def floor(imports: str, env: dict[str, str]) -> dict[str, float]:
    """A process that only imports ``imports``: wall and CPU time to its first statement after."""
    t0, out = run_child(FLOOR_CHILD.format(imports=imports), [], env)
    done, cpu = json.loads(out)
    return {"total_s": done - t0, "total_cpu_s": cpu}


def with_bytecode_cache(env: dict[str, str], cache_dir: str) -> dict[str, str]:
    """``env`` with compiled modules kept under ``cache_dir``. With PYTHONDONTWRITEBYTECODE=1 (as
    on the machine these numbers come from) every fresh process compiles the project's own modules
    from source; an installed service has them compiled."""
    cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache_dir
    return cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=200)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    from bench._procs import scratch_service
    from kg.config import Settings
    from service.root import Session
    from workers.cores import replay
    from workers.events import Event
    from workers.verbs import UPDATES

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
        blob_bytes = {c: len(session.learning.store.load(ns, c).encode()) for c in ("instant", "router")}

        fresh, cached, floors = [], [], {name: [] for name in FLOORS}
        with tempfile.TemporaryDirectory(prefix="kg-pycache-") as cache_dir:
            cached_env = with_bytecode_cache(env, cache_dir)
            fresh_answers(reqs, expected, cached_env)  # fills the cache; not timed
            for _ in range(args.runs):  # interleaved, so that other load on the machine hits all alike
                fresh.append(fresh_answers(reqs, expected, env))
                cached.append(fresh_answers(reqs, expected, cached_env))
                for name, imports in FLOORS.items():
                    floors[name].append(floor(imports, env))

        forked = forked_answers(reqs, expected, env, args.runs)
        with tempfile.TemporaryDirectory(prefix="kg-serve-") as serve_dir:
            restarts = serve_restarts(reqs, expected, env, args.runs, Path(serve_dir) / "serve.log")
        warm = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            with Session(Settings.from_env(env)) as s2:
                assert s2.dispatch(reqs["route"]) == expected["route"]
                assert s2.dispatch(reqs["apply_adapter"]) == expected["apply_adapter"]
            warm.append(time.perf_counter() - t0)

        store = session.learning.store
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
        rebuilt = {c: replay(UPDATES, c, [Event(e.seq, e.id, e.verb, b) for e, b in zip(events[c], bodies[c])]).core
                   for c in events}
        replay_s = time.perf_counter() - t0
        from learn import to_bytes

        assert all(to_bytes(rebuilt[c]) == store.load(ns, c).state for c in rebuilt), "replay differs"
        session.close()

    def row(what: str, runs: list[dict], part: str | None = None, ms: float | None = None) -> dict:
        """Median wall and CPU ms of ``part`` over ``runs`` (or a single wall time ``ms``)."""
        if part is None:
            return {"what": what, "median_ms": ms, "cpu_median_ms": None}
        return {"what": what, "median_ms": float(np.median([r[f"{part}_s"] for r in runs])) * 1e3,
                "cpu_median_ms": float(np.median([r[f"{part}_cpu_s"] for r in runs])) * 1e3}

    rows = [
        row("fresh process: Popen to first answers (route + apply_adapter)", fresh, "total"),
        row("  of which interpreter start (Popen to the script's first line)", fresh, "start"),
        row("  of which imports (from service.root import Session)", fresh, "imports"),
        row("  of which restore: connect, load, check, deserialise, answer", fresh, "restore"),
        row("the same with the project's bytecode cached: Popen to first answers", cached, "total"),
        row("  of which imports (from service.root import Session)", cached, "imports"),
        *(row(f"floor: Popen to done importing {name}", runs, "total") for name, runs in floors.items()),
        row("forked from a preloaded parent: fork to first answers (new Session, connect, restore)", forked, "total"),
        row("kg serve --processes 1: kill -9 of the serving process → first answer from its replacement "
            "(restored state), route over HTTP", [], ms=float(np.median(restarts)) * 1e3),
        row("restore in a running process (new Session, cold cache)", [], ms=float(np.median(warm)) * 1e3),
        row(f"replaying the {n} trajectories + {n} outcomes instead", [], ms=replay_s * 1e3),
    ]
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "dim": dim, "trajectories": n,
            "runs": args.runs, "blob_bytes": blob_bytes, "load_average": list(os.getloadavg()),
            "heavy_modules_of_the_fresh_process": fresh[0]["heavy_modules"],
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
            "target": "first answer from restored state under 50 ms",
            "reference": "~30 s to replay 200 trajectories in the engine users complained about"}
    path = save("workers_restore", {"meta": meta, "rows": rows, "fresh": fresh, "fresh_bytecode_cached": cached,
                                    "floors_s": floors, "forked": forked, "serve_restart_s": restarts,
                                    "warm_s": warm})
    print(f"\nrestore of an adapter + router trained on {n} trajectories (dim {dim}; blobs {blob_bytes} bytes), "
          f"median of {args.runs}, load {meta['load_average'][0]:.1f}\n")
    print("| what | median wall ms | median CPU ms |")
    print("|---|---:|---:|")
    for r in rows:
        cpu = "" if r["cpu_median_ms"] is None else f"{r['cpu_median_ms']:.1f}"
        print(f"| {r['what']} | {r['median_ms']:.1f} | {cpu} |")
    print(f"\nfresh process imported: {', '.join(meta['heavy_modules_of_the_fresh_process'])}")
    print("answers of every fresh process were bit-identical to the running service's")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
