"""Speed of the learning cores: microseconds per call, next to a plain numpy mat-vec of the same size.

    python -m bench.learn_speed [--calls 5000] [--repeat 3]

Each operation is timed call by call with ``time.perf_counter_ns`` after a warm-up, in blocks of
50 calls alternating with its baseline; the table shows the median and the 90th percentile. "core" rows call the core with numpy arrays (what a worker does
after decoding a request once); "+ validate" rows start from the JSON-shaped body (Python lists),
run :func:`workers.bodies.validate` on it and then call the core, i.e. the whole dispatch-side cost. The
baseline for each row is one ``M @ x`` with the matrix shape that dominates the operation, measured
in the same run, so the ratio is comparable across machines. BLAS is pinned to one thread (unless
``OPENBLAS_NUM_THREADS`` is set), as in a prefork worker process: on a small box, multi-threaded
BLAS adds latency to small products. Results go to ``bench/results/learn_speed.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from learn import Draw, FastGRNNRouter, GraphAttention, MicroLoRA  # noqa: E402
from workers.bodies import validate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timeit(
    fn: Callable[[], object], base: Callable[[], object], calls: int, warmup: int = 200
) -> tuple[dict[str, float], dict[str, float]]:
    """Time ``fn`` and ``base`` call by call, in alternating blocks of 50 calls.

    Alternating blocks let both see the same machine load, while each block keeps its own data in
    cache (interleaving single calls would let ``fn`` evict the baseline's matrix and flatter the
    ratio).
    """
    for _ in range(warmup):
        fn()
        base()
    block = 50
    calls = max(block, calls - calls % block)
    samples = np.empty((2, calls))
    clock = time.perf_counter_ns
    for start in range(0, calls, block):
        for k, f in ((0, fn), (1, base)):
            for i in range(start, start + block):
                t0 = clock()
                f()
                samples[k, i] = clock() - t0

    def stats(s: np.ndarray) -> dict[str, float]:
        return {
            "median_us": float(np.median(s) / 1e3),
            "p90_us": float(np.percentile(s, 90) / 1e3),
            "calls": calls,
        }

    return stats(samples[0]), stats(samples[1])


def run(calls: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows: list[dict] = []

    def add(op: str, fn: Callable[[], object], base_shape: tuple[int, int], n: int = calls) -> None:
        M = rng.standard_normal(base_shape)
        x = rng.standard_normal(base_shape[1])
        res, base = timeit(fn, lambda: M @ x, n)
        rows.append(
            {
                "op": op,
                **res,
                "baseline": f"numpy {base_shape[0]}x{base_shape[1]} mat-vec",
                "baseline_median_us": base["median_us"],
                "ratio": res["median_us"] / base["median_us"],
            }
        )

    # --- instant adapter (MicroLoRA) at SONA's 256 and at the service's 384 dimensions ---
    for dim in (256, 384):
        lora = MicroLoRA(targets=["gpt-4", "mixtral", "llama", "claude"], in_dim=dim)
        xs = [rng.standard_normal(dim) / np.sqrt(dim) for _ in range(64)]
        i = iter(range(10**9))
        add(
            f"apply_adapter (in_dim={dim}, core)",
            lambda: lora.apply(xs[next(i) % 64]),
            (2, dim),
        )
        k = iter(range(10**9))

        def feedback() -> None:
            j = next(k)
            lora.learn(xs[j % 64], lora.targets[j % 4], 0.9 if j % 3 else 0.1)

        add(f"feedback (in_dim={dim}, core: Hebbian + replay)", feedback, (2, dim))

    dim = 384
    lora = MicroLoRA(targets=["gpt-4", "mixtral", "llama", "claude"], in_dim=dim)
    bodies = [
        {
            "embedding": (rng.standard_normal(dim) / np.sqrt(dim)).tolist(),
            "model": lora.targets[j % 4],
            "payload": {"quality": 0.9 if j % 3 else 0.1},
            "now_ms": 1_700_000_000_000 + j,
        }
        for j in range(64)
    ]
    k2 = iter(range(10**9))

    def feedback_body() -> None:
        m = validate("feedback", bodies[next(k2) % 64])
        lora.learn(np.asarray(m.embedding), m.model, m.payload.quality)

    add("feedback (in_dim=384, + validate from JSON body)", feedback_body, (2, dim))
    k3 = iter(range(10**9))

    def apply_body() -> None:
        m = validate("apply_adapter", {"embedding": bodies[next(k3) % 64]["embedding"]})
        lora.apply(np.asarray(m.embedding))

    add("apply_adapter (in_dim=384, + validate from JSON body)", apply_body, (2, dim))

    # --- router ---
    router = FastGRNNRouter(in_dim=dim, targets=["gpt-4", "mixtral", "llama", "claude"], epsilon=0.1)
    xs = [rng.standard_normal(dim) / np.sqrt(dim) for _ in range(64)]
    for j in range(200):
        router.record_outcome(router.targets[j % 4], float(j % 2), embedding=xs[j % 64])
    r1 = iter(range(10**9))
    draw = Draw(0.5, 0)  # the service passes one per request (epsilon 0.1: no exploration here)
    add("route (in_dim=384, hidden=128, core)", lambda: router.route(xs[next(r1) % 64], 3000, draw=draw),
        (128, dim))
    r2 = iter(range(10**9))

    def route_body() -> None:
        m = validate("route", {"embedding": bodies[next(r2) % 64]["embedding"], "estimated_tokens": 3000})
        router.route(np.asarray(m.embedding), m.estimated_tokens, draw=draw)

    add("route (in_dim=384, + validate from JSON body)", route_body, (128, dim))
    r3 = iter(range(10**9))

    def outcome() -> None:
        j = next(r3)
        router.record_outcome(router.targets[j % 4], float(j % 2), embedding=xs[j % 64])

    add("record_outcome with embedding (router AdaGrad step + input-shift monitor, core)", outcome, (128, dim))
    quiet = FastGRNNRouter(in_dim=dim, targets=router.targets, epsilon=0.1, shift_window=0)
    for j in range(200):
        quiet.record_outcome(quiet.targets[j % 4], float(j % 2), embedding=xs[j % 64])
    r4 = iter(range(10**9))

    def outcome_quiet() -> None:
        j = next(r4)
        quiet.record_outcome(quiet.targets[j % 4], float(j % 2), embedding=xs[j % 64])

    add("record_outcome with embedding (same, monitor off: shift_window=0)", outcome_quiet, (128, dim))

    # --- attention over a 64-node subgraph ---
    att = GraphAttention(dim=dim, seed=0, relations=["works_at", "knows", "located_in"])
    now = 1_700_000_000_000
    nodes = {f"n{j}": rng.standard_normal(dim) for j in range(64)}
    edges = [
        {
            "src": "center",
            "dst": f"n{j}",
            "relation": ["works_at", "knows", "located_in", "other"][j % 4],
            "weight": float(rng.random()),
            "t_ms": now - int(rng.integers(0, 30 * 86_400_000)),
        }
        for j in range(64)
    ]
    q = rng.standard_normal(dim)
    n_att = max(calls // 5, 200)
    add("attend (dim=384, 64 nodes, 64 edges, core)", lambda: att.attend(q, nodes, edges, now), (dim, dim), n_att)
    body = {
        "query": q.tolist(),
        "subgraph": {"nodes": {k: v.tolist() for k, v in nodes.items()}, "edges": edges},
        "now_ms": now,
    }

    def attend_body() -> None:
        m = validate("attend", body)
        att.attend(
            np.asarray(m.query),
            {k: np.asarray(v) for k, v in m.subgraph.nodes.items()},
            [e.model_dump() for e in m.subgraph.edges],
            m.now_ms,
        )

    add("attend (dim=384, 64 nodes, + validate from JSON body)", attend_body, (dim, dim), n_att)
    return rows


def combine(runs: list[list[dict]]) -> list[dict]:
    """Per operation: the repeat with the median ratio, plus the range of medians over repeats."""
    rows = []
    for i, first in enumerate(runs[0]):
        reps = sorted((run[i] for run in runs), key=lambda r: r["ratio"])
        row = dict(reps[len(reps) // 2])
        row["median_us_range"] = [min(r["median_us"] for r in reps), max(r["median_us"] for r in reps)]
        row["ratio_range"] = [reps[0]["ratio"], reps[-1]["ratio"]]
        row["repeats"] = len(reps)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| operation | median µs | p90 µs | median µs, range over repeats | baseline "
        "| baseline median µs | ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["median_us_range"]
        out.append(
            f"| {r['op']} | {r['median_us']:.1f} | {r['p90_us']:.1f} | {lo:.1f}-{hi:.1f} | "
            f"{r['baseline']} | {r['baseline_median_us']:.2f} | {r['ratio']:.1f}x |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3, help="whole runs; the median-ratio run is shown")
    args = ap.parse_args()
    loads = []
    runs = []
    for _ in range(args.repeat):
        loads.append(os.getloadavg()[0])
        runs.append(run(args.calls))
    rows = combine(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_each_repeat": loads,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "reference": "SONA (Rust): 45 µs MicroLoRA forward at 256 dims, 34 µs instant learning cycle",
    }
    (RESULTS / "learn_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(table(rows))
    print(
        f"\n{meta['cpus']} CPUs, 1-min load average at each repeat {[round(x, 2) for x in loads]}; "
        f"numpy {meta['numpy']}, BLAS threads {meta['blas_threads']}"
    )
    print(f"results: {RESULTS / 'learn_speed.json'}")


if __name__ == "__main__":
    main()
