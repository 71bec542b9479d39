"""Feedback events per second end to end (submitted -> applied -> in Redis), vs raw Redis round trips.

    python -m bench.workers_throughput [--events 20000] [--dim 384] [--callers 2] [--naive 2000]
                                       [--rows raw,single1,single2x2,single2x1,bulk1,bulk2,naive]

Everything runs on this machine in this run: a redis-server as ``kg up`` runs it (AOF,
appendfsync everysec), Celery worker processes (one pool process each), and caller processes that
send ``feedback`` through ``Session.dispatch`` with ``"async": true``. The clock starts when the
callers start sending and stops when the store's consumed counter reaches the number of events,
i.e. when the last event's new blob, version and result are written (and in the AOF, fsynced
within a second). Rows:

- raw Redis: sequential SET round trips of one client (the baseline), sequential ``enqueue.lua``
  round trips of one event each (what a per-request caller pays), and ``enqueue_bulk`` of 500
  events per call (the cheapest the submit side can be);
- per-request ``feedback``, 1 worker, 1 state: each request validated, checked and queued by its
  own ``enqueue.lua`` round trip; the workers still apply micro-batches;
- per-request, 2 workers, 2 states: two namespaces (a state is applied by one drain at a time,
  in order, so a second worker helps with a second state, not with the same one);
- per-request, 2 workers, 1 state: shows that;
- ``feedback_batch``: the callers send 500 events per ``Session.dispatch`` (each event validated
  and checked like a request, queued in one round trip), 1 worker / 1 state and 2 workers /
  2 states;
- naive, one task per event: each event applied by its own Celery task (load, apply, CAS), the
  benchmark's ``bench.apply_one`` (``bench/_naive_worker.py``), without the drain's lock.

Results: ``bench/results/workers_throughput.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import save

RNG_SEED = 7
BULK = 500
# (key, workers, states, bulk, label)
SCENARIOS = [
    ("single1", 1, 1, False, "per-request feedback, 1 worker, 1 state"),
    ("single2x2", 2, 2, False, "per-request feedback, 2 workers, 2 states"),
    ("single2x1", 2, 1, False, "per-request feedback, 2 workers, 1 state"),
    ("bulk1", 1, 1, True, f"feedback_batch ({BULK} per call), 1 worker, 1 state"),
    ("bulk2", 2, 2, True, f"feedback_batch ({BULK} per call), 2 workers, 2 states"),
]


def _caller(url: str, home: str, namespaces: list[str], n: int, dim: int, seed: int, start_at: float,
            out: mp.Queue, bulk: bool) -> None:
    os.environ.update({"KG_REDIS_URL": url, "KG_HOME": home})
    from kg.config import Settings
    from service.root import Session

    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((64, dim)).round(6).tolist()
    session = Session(Settings.from_env())
    reqs = [{"verb": "feedback", "async": True, "body": {
        "namespace": namespaces[i % len(namespaces)], "embedding": xs[i % 64], "model": "abc"[i % 3],
        "payload": {"quality": 0.1 + 0.8 * ((i * 7919) % 100) / 100}, "now_ms": i}} for i in range(n)]
    session.dispatch({"verb": "health", "body": {"namespace": namespaces[0]}})  # connect, load shapes
    for ns in namespaces:
        session.dispatch({"verb": "apply_adapter", "body": {"namespace": ns, "embedding": xs[0]}})
    batches = []  # feedback_batch requests of BULK events (the same events, the same order per state)
    for ns in namespaces:
        mine = [{k: v for k, v in r["body"].items() if k != "namespace"}
                for r in reqs if r["body"]["namespace"] == ns]
        batches += [{"verb": "feedback_batch", "async": True,
                     "body": {"namespace": ns, "events": mine[i:i + BULK]}} for i in range(0, len(mine), BULK)]
    while time.time() < start_at:
        time.sleep(0.0005)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    bad = 0
    if bulk:  # one Session.dispatch per BULK events: validated and checked like single requests
        for req in batches:
            answer = session.dispatch(req)
            bad += len(req["body"]["events"]) if not answer["ok"] else answer["data"]["duplicates"]
    else:
        for r in reqs:
            bad += not session.dispatch(r)["ok"]
    out.put((time.perf_counter() - t0, bad, time.process_time() - cpu0))
    session.close()


def _wait_done(store, namespaces: list[str], counts: dict[str, int], timeout: float = 600) -> float:
    from workers.store_keys import StateKeys

    deadline = time.monotonic() + timeout
    while True:
        done = {ns: int(store.r.get(StateKeys.of(ns, "instant").done) or 0) for ns in namespaces}
        if all(done[ns] >= counts[ns] for ns in namespaces):
            return time.time()
        if time.monotonic() > deadline:
            raise RuntimeError(f"events not applied in time: {done} of {counts}")
        time.sleep(0.002)


def _group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of a process group (a Celery worker and
    its pool), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; utime and stime are fields 14 and 15 of the line
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _redis_cpu_s(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _cpu_row(total: int, callers_s: float, workers_s: float, redis_s: float) -> dict:
    """CPU time per event of every process involved, and the rate it implies for a machine whose
    two cores do nothing else (an estimate: this machine's cores were shared with other jobs)."""
    per = {k: v * 1e6 / total for k, v in (("callers", callers_s), ("workers", workers_s), ("redis", redis_s))}
    per["total"] = sum(per.values())
    return {"cpu_us_per_event": {k: round(v, 1) for k, v in per.items()},
            "events_per_s_if_2_idle_cores": round(2e6 / per["total"])}


def micro_batched(root: Path, events: int, dim: int, callers: int, n_workers: int, n_states: int,
                  label: str, bulk: bool = False) -> dict:
    from bench._procs import RedisServer, Worker, worker_env
    from kg.config import Settings
    from service.root import Session
    from workers.store_keys import StateKeys

    server = RedisServer(root / label.replace(" ", "_").replace(",", ""))
    server.start()
    env = worker_env(server.url, root / "home", KG_TASK_TIME_LIMIT_S="60", KG_TASK_SOFT_TIME_LIMIT_S="50",
                     KG_VISIBILITY_TIMEOUT_S="120", KG_DRAIN_BUDGET_S="5",
                     KG_STATE_HISTORY_EVERY_MS="1000")
    workers = [Worker(env, f"bench{i}", server.dir, loglevel="WARNING").start() for i in range(n_workers)]
    try:
        session = Session(Settings.from_env(env))
        namespaces = [f"tp{i}" for i in range(n_states)]
        for ns in namespaces:
            out = session.dispatch({"verb": "init_instant", "body": {
                "namespace": ns, "targets": ["a", "b", "c"], "in_dim": dim}})
            assert out["ok"], out
        store = session.learning.store
        base = {ns: int(store.r.get(StateKeys.of(ns, "instant").done) or 0) for ns in namespaces}
        per = events // callers
        queue: mp.Queue = mp.get_context("spawn").Queue()
        start_at = time.time() + 3.0
        procs = [mp.get_context("spawn").Process(
            target=_caller, args=(server.url, env["KG_HOME"], namespaces, per, dim, RNG_SEED + c, start_at, queue,
                                  bulk))
            for c in range(callers)]
        for p in procs:
            p.start()
        counts = {ns: base[ns] + sum(1 for c in range(callers) for i in range(per)
                                     if namespaces[i % n_states] == ns) for ns in namespaces}
        cpu_workers, cpu_redis = sum(_group_cpu_s(w.proc.pid) for w in workers), _redis_cpu_s(store.r)
        end = _wait_done(store, namespaces, counts)
        cpu_workers = sum(_group_cpu_s(w.proc.pid) for w in workers) - cpu_workers
        cpu_redis = _redis_cpu_s(store.r) - cpu_redis
        submit = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        total = per * callers
        assert sum(b for _, b, _ in submit) == 0, "some submissions failed"
        updates = {ns: store.load(ns, "instant").updates for ns in namespaces}
        assert sum(updates.values()) == total, updates
        versions = {ns: store.version(ns, "instant") for ns in namespaces}
        elapsed = end - start_at
        session.close()
        return {"scenario": label, "events": total, "workers": n_workers, "states": n_states,
                "callers": callers, "elapsed_s": elapsed, "events_per_s": total / elapsed,
                "submit_s_per_caller": [round(s, 3) for s, _, _ in submit],
                "commits": sum(versions.values()) - n_states,
                "mean_batch": total / max(1, sum(versions.values()) - n_states),
                **_cpu_row(total, sum(c for _, _, c in submit), cpu_workers, cpu_redis)}
    finally:
        for w in workers:
            w.stop()
        server.stop()


def naive(root: Path, events: int, dim: int) -> dict:
    from bench._procs import RedisServer, Worker, worker_env
    from kg.config import Settings
    from service.root import Session
    from workers.app import publisher
    from workers.events import event_bytes

    server = RedisServer(root / "naive")
    server.start()
    env = worker_env(server.url, root / "home", KG_TASK_TIME_LIMIT_S="60", KG_TASK_SOFT_TIME_LIMIT_S="50",
                     KG_VISIBILITY_TIMEOUT_S="120", KG_DRAIN_BUDGET_S="5",
                     KG_STATE_HISTORY_EVERY_MS="1000")
    # the product's worker plus the task bench.apply_one (one event per task, no drain lock)
    worker = Worker(env, "naive", server.dir, loglevel="WARNING", app="bench._naive_worker").start()
    try:
        settings = Settings.from_env(env)
        session = Session(settings)
        assert session.dispatch({"verb": "init_instant", "body": {
            "namespace": "naive", "targets": ["a", "b", "c"], "in_dim": dim}})["ok"]
        store = session.learning.store
        rng = np.random.default_rng(RNG_SEED)
        xs = rng.standard_normal((64, dim)).round(6).tolist()
        items = [(f"n{i}", event_bytes(f"n{i}", "feedback", {
            "embedding": xs[i % 64], "model": "abc"[i % 3], "payload": {"quality": 0.9}, "now_ms": i}, False))
            for i in range(events)]
        app = publisher(settings)
        t0 = time.time()
        for i in range(0, events, 500):  # events wait in the queue, one task each applies one
            queued = store.enqueue_bulk("naive", "instant", items[i:i + 500])
            assert all(queued.accepted)
            for _ in range(min(500, events - i)):
                app.send_task("bench.apply_one", args=["naive", "instant"])
        end = _wait_done(store, ["naive"], {"naive": events + 1})
        elapsed = end - t0
        assert store.load("naive", "instant").updates == events
        session.close()
        return {"scenario": "naive, one task per event, 1 worker", "events": events, "workers": 1,
                "states": 1, "callers": 1, "elapsed_s": elapsed, "events_per_s": events / elapsed,
                "commits": events, "mean_batch": 1.0}
    finally:
        worker.stop()
        server.stop()


def raw_redis(root: Path, n: int, dim: int) -> list[dict]:
    from bench._procs import RedisServer
    from kg.config import WorkerSettings
    from workers.events import event_bytes
    from workers.weight_store import WeightStore

    server = RedisServer(root / "raw")
    server.start()
    try:
        client = server.client()
        client.set("k", "v")
        t0 = time.perf_counter()
        for _ in range(n):
            client.set("k", "v")
        seq = n / (time.perf_counter() - t0)
        store = WeightStore(client, WorkerSettings())
        x = np.random.default_rng(RNG_SEED).standard_normal(dim).round(6).tolist()
        items = [(f"r{i}", event_bytes(f"r{i}", "feedback", {
            "embedding": x, "model": "a", "payload": {"quality": 0.9}, "now_ms": i}, False)) for i in range(n)]
        t0 = time.perf_counter()
        for eid, payload in items:
            store.enqueue("raw", "instant", eid, payload)
        single = n / (time.perf_counter() - t0)
        bulk_items = [(f"b{eid}", payload) for eid, payload in items]
        t0 = time.perf_counter()
        for i in range(0, n, BULK):
            store.enqueue_bulk("raw", "instant", bulk_items[i:i + BULK])
        bulk = n / (time.perf_counter() - t0)
        return [
            {"scenario": "raw Redis: sequential SET round trips, 1 client", "ops_per_s": seq},
            {"scenario": f"raw Redis: enqueue.lua round trips, one {dim}-float event per call", "ops_per_s": single},
            {"scenario": f"raw Redis: enqueue_bulk.lua, {BULK} {dim}-float events per call", "ops_per_s": bulk},
        ]
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--callers", type=int, default=2)
    ap.add_argument("--naive", type=int, default=2000, help="events for the one-task-per-event row")
    ap.add_argument("--rows", default=",".join(["raw", *(k for k, *_ in SCENARIOS), "naive"]),
                    help="which rows to run (comma-separated keys: raw, " + ", ".join(k for k, *_ in SCENARIOS)
                    + ", naive)")
    args = ap.parse_args()
    rows: list[dict] = []
    wanted = set(args.rows.split(","))
    with tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        root = Path(tmp)
        if "raw" in wanted:
            rows += raw_redis(root, args.events, args.dim)
        for key, n_workers, n_states, bulk, label in SCENARIOS:
            if key in wanted:
                rows.append(micro_batched(root, args.events, args.dim, args.callers, n_workers, n_states,
                                          label, bulk=bulk))
        if "naive" in wanted:
            rows.append(naive(root, args.naive, args.dim))
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "dim": args.dim,
            "load_average": list(os.getloadavg()), "target": "5000 events/s with micro-batching",
            "reference": "SONA (in-process Rust) ~2,200 rank-2 updates/s"}
    path = save("workers_throughput", {"meta": meta, "rows": rows})
    print(f"\nfeedback events, embedding dim {args.dim}, {os.cpu_count()} CPUs, load {meta['load_average'][0]:.1f}\n")
    base = rows[0]["ops_per_s"] if rows and "ops_per_s" in rows[0] else None
    print("| scenario | events | elapsed s | events/s | / raw SET | mean batch | CPU µs/event (callers + "
          "workers + redis) | events/s if 2 idle cores |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "ops_per_s" in r:
            print(f"| {r['scenario']} | | | {r['ops_per_s']:,.0f} ops/s | | | | |")
            continue
        ratio = f"{r['events_per_s'] / base:.2f}" if base else ""
        cpu = r.get("cpu_us_per_event")
        cpu_text = (f"{cpu['total']:.0f} ({cpu['callers']:.0f} + {cpu['workers']:.0f} + {cpu['redis']:.0f})"
                    if cpu else "")
        est = f"{r['events_per_s_if_2_idle_cores']:,}" if cpu else ""
        print(f"| {r['scenario']} | {r['events']:,} | {r['elapsed_s']:.2f} | {r['events_per_s']:,.0f} | {ratio} | "
              f"{r['mean_batch']:.0f} | {cpu_text} | {est} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
