"""``route`` latency through ``Session.dispatch`` with a warm cache, against a bare Redis GET.

    python -m bench.workers_route_latency [--calls 5000] [--dim 384]

A redis-server as ``kg up`` runs it and one worker; a router (hidden 128, rank 8, 3 targets) is
initialised and trained on 200 outcomes, so it answers with the network (``algo: fastgrnn``).
Then, in this process, after a warm-up, each call is timed alone (``perf_counter_ns``), the paths
taking turns in blocks of 50 calls so that all see the same load:

- bare Redis GET of the state's version key (the one round trip every read makes), on the kind
  of dedicated connection reads use, and through redis-py's pooled client;
- ``route`` through ``Session.dispatch``: validate the body, send the version GET, route on the
  cached core (exploration seeded per request), read the version, answer;
- the same through ``dispatch_line`` (JSON text in and out, what ``kg dispatch`` does per line);
- the router alone on the same input (no validation, no Redis), for scale;
- ``route`` over HTTP: ``POST /v1/dispatch`` to a ``kg serve --processes 1`` started on the same
  redis-server, on one kept-alive connection (``TCP_NODELAY``, as urllib3 and httpx set it), and
  on a new connection per call (what ``bench._procs.post`` does).

For the HTTP paths the CPU time is this process's plus the serving process's (from
``/proc/<pid>/stat``, in clock ticks: fine over thousands of calls).

Beside the wall-clock percentiles, each path's CPU time per call in this process
(``time.process_time``): on a machine shared with other jobs the latency mostly measures the
scheduler, the CPU time what the path itself costs.

Results: ``bench/results/workers_route_latency.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import save


def _stats(samples_ns: np.ndarray) -> dict:
    us = samples_ns / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()), "calls": int(len(us))}


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + sys) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time(fns: dict[str, object], calls: int, block: int = 50, warmup: int = 300,
          cpu_clocks: dict[str, object] | None = None) -> dict[str, np.ndarray]:
    """Time each call alone, the paths taking turns in blocks of ``block`` calls, so that every
    path sees the same load of this shared machine (the ratios are what to read). A path's CPU
    time comes from ``cpu_clocks[name]`` (default: this process's)."""
    cpu_clocks = cpu_clocks or {}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {name: np.empty(calls) for name in fns}
    cpu = dict.fromkeys(fns, 0.0)
    clock = time.perf_counter_ns
    for start in range(0, calls, block):
        for name, fn in fns.items():
            samples = out[name]
            cpu_clock = cpu_clocks.get(name, time.process_time)
            c0 = cpu_clock()
            for i in range(start, min(start + block, calls)):
                t0 = clock()
                fn()
                samples[i] = clock() - t0
            cpu[name] += cpu_clock() - c0
    return {name: (samples, cpu[name] / calls) for name, samples in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    from kg.config import Settings
    from service.root import Session
    from bench._procs import Serve, post, scratch_service
    from workers.reads import route_read
    from workers.store_keys import StateKeys

    rows = []
    with scratch_service("lat") as env, tempfile.TemporaryDirectory(prefix="kg-serve-") as serve_dir:
        session = Session(Settings.from_env(env))
        d = session.dispatch
        assert d({"verb": "init_router", "body": {"namespace": "lat", "targets": ["small", "medium", "large"],
                                                  "in_dim": args.dim}})["ok"]
        rng = np.random.default_rng(0)
        for i in range(200):
            x = rng.standard_normal(args.dim).tolist()
            assert d({"verb": "record_outcome", "async": i < 199, "body": {
                "namespace": "lat", "target": ["small", "medium", "large"][i % 3],
                "quality": float(rng.random()), "embedding": x}})["ok"]
        x = rng.standard_normal(args.dim).tolist()
        req = {"verb": "route", "body": {"namespace": "lat", "embedding": x, "estimated_tokens": 3000}}
        line = json.dumps(req)
        first = d(req)
        assert first["ok"] and first["data"]["algo"] == "fastgrnn", first
        lrn = session.learning
        pooled = lrn.store.r
        key = StateKeys.of("lat", "router").ver
        cur = lrn.current("lat", "router")
        probe = lrn.probes.take()  # a connection like the ones reads revalidate on
        xa = np.asarray(x)
        server = Serve(env, 1, Path(serve_dir) / "serve.log").start()
        (serving,) = server.wait_ready()
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        kept.connect()  # http.client sends a body over 2,920 bytes in a second write: without TCP_NODELAY
        kept.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # (urllib3 and httpx set it) it waits 40 ms
        body, headers = line.encode(), {"Content-Type": "application/json"}

        def over_kept_connection() -> dict:
            kept.request("POST", "/v1/dispatch", body=body, headers=headers)
            resp = kept.getresponse()
            return json.loads(resp.read())

        def server_and_client_cpu() -> float:
            return time.process_time() + _process_cpu(serving)

        assert over_kept_connection() == first and post(server.port, req) == first, "HTTP answers differ"
        http_paths = {"route over HTTP (kg serve, one kept-alive connection)": over_kept_connection,
                      "route over HTTP (kg serve, a new connection per call)": lambda: post(server.port, req)}
        paths = {
            "bare Redis GET of the version key (a read's dedicated connection)": lambda: probe.get(key),
            "bare Redis GET of the version key (redis-py pool)": lambda: pooled.get(key),
            "route via Session.dispatch (warm cache)": lambda: d(req),
            "route via dispatch_line (JSON in and out)": lambda: session.dispatch_line(line),
            "router alone (route_read on the cached core)": lambda: route_read(cur, xa, 3000),
            **http_paths,
        }
        try:
            timed = _time(paths, args.calls, cpu_clocks=dict.fromkeys(http_paths, server_and_client_cpu))
            assert over_kept_connection() == first and post(server.port, req) == first, "HTTP answers differ"
        finally:
            kept.close()
            assert server.stop() == 0, (Path(serve_dir) / "serve.log").read_text()[-2000:]
        rows = [{"path": name, **_stats(samples), "cpu_us": cpu_s * 1e6} for name, (samples, cpu_s) in timed.items()]
        assert d(req) == first, "reads are deterministic on an unchanged state"
        probe.close()
        session.close()
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "dim": args.dim,
            "load_average": list(os.getloadavg()), "target": "route p50 under 200 us through Session.dispatch"}
    path = save("workers_route_latency", {"meta": meta, "rows": rows})
    base = rows[0]["p50_us"]
    print(f"\nroute latency, embedding dim {args.dim}, hidden 128, {args.calls} calls each, "
          f"load {meta['load_average'][0]:.1f}\n")
    print("| path | p50 µs | p99 µs | p50 / Redis GET | CPU µs per call (this process; HTTP: + kg serve's) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['path']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p50_us'] / base:.2f} | {r['cpu_us']:.0f} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
