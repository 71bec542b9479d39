"""What a state at the request bounds costs: bytes, memory, and the time of one update.

    python -m bench.limits_cost [--repeat 5] [--no-worker]

For each core at the largest size :mod:`learn.limits` allows, in this process (BLAS on one thread,
as in a worker): the serialised state's bytes, the peak memory traced while building and
serialising it, and the median time of its init, of one update, of ``to_bytes`` + ``from_bytes``
(what every commit of a drain adds), and of the heaviest bounded requests (``train_router`` at
``TRAIN_MAX_WORK``, ``attend`` at ``ATTEND_MAX_VALUES``). Then, unless ``--no-worker``, the same
inits through a real worker (redis-server + ``celery worker``): the answer's wall time and the
pool process's peak resident memory (``VmHWM``). Results go to ``bench/results/limits_cost.json``;
the README's "Limits" section quotes them.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from learn import EWC, FastGRNNRouter, GraphAttention, MicroLoRA, from_bytes, to_bytes  # noqa: E402
from learn import limits as L  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20
TARGETS = [f"t{i}" for i in range(L.MAX_TARGETS)]
RELATIONS = [f"r{i}" for i in range(L.MAX_RELATIONS)]


def median_s(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def cores(repeat: int) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(L.MAX_DIM)
    rows: dict[str, dict[str, Any]] = {}

    def router() -> FastGRNNRouter:
        r = FastGRNNRouter(in_dim=L.MAX_DIM, targets=TARGETS, seed=0)
        g = r.grads(x, "t1", 0.5)
        r.anchor({k: v * v for k, v in g.items()})
        return r

    def ewc() -> EWC:
        e = EWC()
        for i in range(L.EWC_MAX_VALUES // L.MAX_PARAMS):
            e.consolidate(f"p{i}", np.ones(L.MAX_PARAMS), np.ones(L.MAX_PARAMS))
        return e

    attention_size = {"dim": 1024, "heads": 8, "head_dim": 128, "relations": RELATIONS}
    specs: dict[str, tuple[str, Callable[[], Any], Callable[[Any], Any], str]] = {
        "instant": (f"in_dim {L.MAX_DIM}, {L.MAX_TARGETS} targets",
                    lambda: MicroLoRA(targets=TARGETS, in_dim=L.MAX_DIM),
                    lambda c: c.learn(x, "t1", 0.9), "feedback"),
        "router": (f"in_dim {L.MAX_DIM}, {L.MAX_TARGETS} targets, anchored", router,
                   lambda c: c.record_outcome("t1", 0.7, embedding=x), "record_outcome with embedding"),
        "attention": ("dim 1024, 8 heads of 128, 1,024 relations",
                      lambda: GraphAttention(**attention_size), None, "init_attention"),
        "ewc": (f"{L.EWC_MAX_VALUES:,} values ({L.EWC_MAX_VALUES // L.MAX_PARAMS} ids of {L.MAX_PARAMS:,})", ewc,
                lambda c: c.consolidate("p1", np.ones(L.MAX_PARAMS), np.ones(L.MAX_PARAMS)), "consolidate"),
    }
    for kind, (size, build, update, verb) in specs.items():
        (core, blob), peak = traced_peak(lambda: (lambda c: (c, to_bytes(c)))(build()))
        init_s = median_s(build, repeat) if kind != "ewc" else None
        update_s = median_s(lambda: update(core), repeat) if update else init_s
        codec_s = median_s(lambda: from_bytes(to_bytes(core), kind), repeat)
        rows[kind] = {"size": size, "state_bytes": len(blob), "estimate_bytes": L.state_bytes(
            kind, **({"in_dim": L.MAX_DIM, "targets": L.MAX_TARGETS} if kind in ("instant", "router") else
                     {"dim": 1024, "heads": 8, "head_dim": 128, "relations": L.MAX_RELATIONS}
                     if kind == "attention" else {"values": L.EWC_MAX_VALUES})),
            "peak_traced_bytes": peak, "update": verb, "update_s": update_s, "codec_s": codec_s}
        if kind == "router":
            n = L.TRAIN_MAX_WORK // L.MAX_DIM
            X = rng.standard_normal((n, L.MAX_DIM))
            ts = [TARGETS[i % len(TARGETS)] for i in range(n)]
            qs = rng.random(n)
            rows["train_router"] = {"size": f"{n} samples x 1 epoch at in_dim {L.MAX_DIM} (TRAIN_MAX_WORK)",
                                    "update_s": median_s(lambda: core.train_batch(X, ts, qs), max(1, repeat // 2))}
        if kind == "attention":
            n = L.ATTEND_MAX_VALUES // 1024
            nodes = {f"n{i}": rng.standard_normal(1024).tolist() for i in range(n)}
            edges = [{"src": "q", "dst": f"n{i}", "relation": RELATIONS[i % 7], "weight": 1.0, "t_ms": 0}
                     for i in range(n)]
            q = rng.standard_normal(1024).tolist()
            rows["attend"] = {"size": f"{n} nodes of 1,024 (ATTEND_MAX_VALUES), {n} edges",
                              "update_s": median_s(lambda: core.attend(q, nodes, edges, 10), repeat)}
    return rows


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def through_worker() -> dict[str, Any]:
    """Each init at the bounds through a real worker; the pool process's peak memory after each."""
    from bench._procs import RedisServer, Worker, children, wait_for, worker_env
    from kg.config import Settings
    from service.root import Session

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        env = worker_env(server.url, Path(tmp) / "home",
                         KG_TASK_TIME_LIMIT_S="120", KG_TASK_SOFT_TIME_LIMIT_S="96", KG_DRAIN_BUDGET_S="5",
                         KG_VISIBILITY_TIMEOUT_S="600")
        worker = Worker(env, "limits", server.dir, loglevel="WARNING").start()
        try:
            pool = wait_for(lambda: children(worker.proc.pid), 20, "the pool process")
            (pid,) = pool
            out["idle_hwm_kib"] = vm_hwm_kib(pid)
            with Session(Settings.from_env(env)) as session:
                requests = [
                    ("init_instant", {"targets": TARGETS, "in_dim": L.MAX_DIM}),
                    ("init_router", {"targets": TARGETS, "in_dim": L.MAX_DIM}),
                    ("init_attention", {"dim": 1024, "relations": RELATIONS}),
                    ("init_attention", {"dim": L.MAX_DIM, "head_dim": 16}),
                ]
                for i, (verb, body) in enumerate(requests):
                    t0 = time.perf_counter()
                    answer = session.dispatch({"verb": verb, "body": dict(body, namespace=f"b{i}")})
                    wall = time.perf_counter() - t0
                    assert answer["ok"], answer
                    out[f"{verb}:{i}"] = {"wall_s": wall, "hwm_kib": vm_hwm_kib(pid)}
                refused = time.perf_counter()
                answer = session.dispatch({"verb": "init_attention", "body": {"dim": 8192, "namespace": "x"}})
                out["refused_dim_8192"] = {"wall_s": time.perf_counter() - refused, "error": answer["error"]}
        finally:
            worker.stop()
            server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args()
    rows = cores(args.repeat)
    print(f"{'core / request':<14} {'size':<52} {'state MiB':>9} {'peak MiB':>8} {'update ms':>9} {'codec ms':>8}")
    for kind, r in rows.items():
        state = f"{r['state_bytes'] / MiB:.1f}" if "state_bytes" in r else "-"
        peak = f"{r['peak_traced_bytes'] / MiB:.0f}" if "peak_traced_bytes" in r else "-"
        codec = f"{r['codec_s'] * 1e3:.0f}" if "codec_s" in r else "-"
        print(f"{kind:<14} {r['size']:<52} {state:>9} {peak:>8} {r['update_s'] * 1e3:>9.1f} {codec:>8}")
    result: dict[str, Any] = {"cores": rows, "budget_bytes": L.STATE_BUDGET_BYTES}
    if not args.no_worker:
        result["worker"] = w = through_worker()
        print(f"worker pool process: idle peak RSS {w['idle_hwm_kib'] / 1024:.0f} MiB")
        for key, v in w.items():
            if isinstance(v, dict) and "hwm_kib" in v:
                print(f"  {key:<18} answered in {v['wall_s'] * 1e3:.0f} ms, peak RSS since start {v['hwm_kib'] / 1024:.0f} MiB")
        print(f"  init_attention dim 8192: refused in {w['refused_dim_8192']['wall_s'] * 1e3:.1f} ms "
              f"({w['refused_dim_8192']['error'][:60]}...)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "limits_cost.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
