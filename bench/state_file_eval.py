"""State files at 256 dimensions: the size of each learned component, and the time from
``load_state`` to the first answer.

    python -m bench.state_file_eval [--dim 256] [--events 200] [--runs 10]

Setup (not timed): a throw-away redis-server and one worker (``bench._procs.scratch_service``);
one namespace whose every core is trained through the service's verbs, like a client would:
the adapter by ``--events`` feedback events and one BaseLoRA consolidation, the router by as many
outcomes, the pattern bank by as many trajectories and one clustering (16 patterns), EWC by a
``consolidate`` of one ``dim x dim`` parameter set (the reference engine's Fisher is one such
matrix, 65,536 values: the most one ``consolidate`` takes), graph attention initialised at ``dim``. ``save_state`` writes the file.

Reported:

- **sizes**: the file, each core's part, and inside the parts the reference engine's components
  (MicroLoRA = the micro factors ``A``, ``B``; BaseLoRA = ``base_*``; EWC Fisher = the EWC core's
  Fisher arrays; pattern centroids and the other per-pattern arrays), next to its sizes at 256
  dimensions (MicroLoRA 2 KB, BaseLoRA 16 KB, EWC Fisher
  256 KB, pattern centroids 40 KB, pattern metadata 5 KB). The service stores float64 and keeps
  more than the reference does (replay buffers, optimiser state, snapshots), so the parts are
  compared, not just the totals;
- **load to first answer**, per run into a new namespace: reading and checking the file
  (``read_state_file``: size, header, SHA-256 of every part, each core deserialised once), the
  writes (``load_state``: compare-and-set of every core), and the first ``route`` and
  ``apply_adapter`` (with its base and micro parts), ``find_patterns``, ``ewc_penalty`` and
  ``attend`` from a new ``Session`` (cold cache: it fetches, checks and deserialises the
  blobs), whose answers (all but the state version) are compared with the source namespace's (bit-identical). Medians and
  p99 over ``--runs``.

Results: ``bench/results/state_file_eval.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import safetensors.numpy as st_numpy

from bench._common import percentiles, save

REFERENCE_KB = {"MicroLoRA": 2, "BaseLoRA": 16, "EWC Fisher": 256, "pattern centroids": 40,
                "pattern metadata": 5}


def component_of(kind: str, array: str) -> str:
    """The reference engine's component an array of a core's state counts as, or the core's own
    name for the rest (what this service keeps beyond the reference: replay buffers, snapshots,
    the router and attention)."""
    if kind == "instant":
        if array in ("A", "B"):
            return "MicroLoRA"
        if array.startswith("base_"):
            return "BaseLoRA"
        return "instant: " + array.split("_")[0]  # replay buffer, EWC snapshot and Fisher of the micro
    if kind == "ewc" and array.startswith("fisher"):
        return "EWC Fisher"
    if kind == "patterns" and array.startswith("pattern."):
        return "pattern centroids" if array == "pattern.centroid" else "pattern metadata"
    return f"{kind}: " + (array.split(".")[0] if "." in array else array.split("_")[0])


def components(blob: bytes, kind: str) -> dict[str, int]:
    """Bytes per component (:func:`component_of`) of one core's state blob."""
    out: dict[str, int] = defaultdict(int)
    for name, array in st_numpy.load(blob).items():
        out[component_of(kind, name)] += array.nbytes
    return dict(out)


def train(dispatch, ns: str, dim: int, events: int, rng: np.random.Generator) -> None:
    """Every core of ``ns`` trained through the verbs."""
    targets = ["gpt-4", "mixtral"]

    def ok(verb: str, body: dict, async_: bool = False) -> dict:
        answer = dispatch({"verb": verb, "async": async_, "body": {"namespace": ns, **body}})
        if not answer.get("ok"):
            raise SystemExit(f"{verb} failed: {answer}")
        return answer

    ok("init_instant", {"targets": targets, "in_dim": dim})
    ok("init_router", {"targets": targets, "in_dim": dim})
    ok("init_attention", {"dim": dim})
    ok("init_patterns", {"dim": dim, "targets": targets})
    xs = rng.standard_normal((events, dim))
    for i, x in enumerate(xs):
        last = i == events - 1
        quality = float(rng.random())
        ok("feedback", {"embedding": x.tolist(), "model": targets[i % 2], "payload": {"quality": quality},
                        "now_ms": i}, async_=not last)
        ok("record_outcome", {"target": targets[i % 2], "quality": quality, "embedding": x.tolist()},
           async_=not last)
    ok("consolidate_adapter", {})
    trajectories = [{"embedding": x.tolist(), "quality": float(rng.random()),
                     "steps": [{"embedding": rng.standard_normal(dim).tolist(), "target": targets[i % 2]}]}
                    for i, x in enumerate(xs)]
    for start in range(0, len(trajectories), 50):
        ok("record_trajectories", {"trajectories": trajectories[start:start + 50]})
    ok("cluster_patterns", {})
    params = rng.standard_normal((dim, dim))
    grads = rng.standard_normal((dim, dim))
    ok("consolidate", {"param_id": "head", "params": params.ravel().tolist(), "grads": grads.ravel().tolist()})


def answer_of(reply: dict) -> dict:
    """A read's answer without the state version (a loaded copy starts its own versions)."""
    return {k: v for k, v in reply.get("data", {}).items() if k != "version"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    from bench._procs import scratch_service
    from kg.config import Settings
    from service.root import Session
    from workers.state_file import load_state, read_state_file, save_state

    rng = np.random.default_rng(0)
    probe = rng.standard_normal(args.dim).tolist()
    with scratch_service("statefile") as env, tempfile.TemporaryDirectory(prefix="kg-statefile-") as tmp:
        settings = Settings.from_env(env)
        source = Session(settings)
        train(source.dispatch, "source", args.dim, args.events, rng)
        nodes = {name: rng.standard_normal(args.dim).tolist() for name in ("a", "b", "c")}
        reads = {verb: {"verb": verb, "body": {"namespace": "source", **body}} for verb, body in (
            ("route", {"embedding": probe}),
            ("apply_adapter", {"embedding": probe, "parts": True}),
            ("find_patterns", {"embedding": probe, "k": 3}),
            ("ewc_penalty", {"param_id": "head", "params": rng.standard_normal(args.dim * args.dim).tolist()}),
            ("attend", {"query": probe, "now_ms": 1000, "subgraph": {
                "nodes": nodes, "edges": [{"src": "a", "dst": "b", "t_ms": 500}, {"src": "c", "dst": "a"}]}}))}
        expected = {verb: answer_of(source.dispatch(req)) for verb, req in reads.items()}
        path = Path(tmp) / "source.kgstate"
        save_state("source", path, settings=settings)

        state_file = read_state_file(path)
        sizes = {"file_bytes": path.stat().st_size,
                 "cores": {kind: {"bytes": len(part.state), "components": components(part.state, kind)}
                           for kind, part in sorted(state_file.parts.items())}}

        timings: dict[str, list[float]] = {"read_and_check": [], "load_state": [], "first_answers": [], "total": []}
        for run in range(args.runs):
            ns = f"copy{run}"
            t0 = time.perf_counter()
            read_state_file(path)
            t1 = time.perf_counter()
            load_state(path, ns, settings=settings)
            t2 = time.perf_counter()
            with Session(settings) as fresh:
                for verb, req in reads.items():
                    answer = answer_of(fresh.dispatch({"verb": verb, "body": {**req["body"], "namespace": ns}}))
                    if answer != expected[verb]:
                        raise SystemExit(f"{verb} from the loaded copy differs: {answer} != {expected[verb]}")
            t3 = time.perf_counter()
            for key, value in (("read_and_check", t1 - t0), ("load_state", t2 - t1), ("first_answers", t3 - t2),
                               ("total", t3 - t1)):
                timings[key].append(value)
        source.close()

    result = {"dim": args.dim, "events": args.events, "runs": args.runs, "sizes": sizes,
              "reference_kb": REFERENCE_KB, "timings": {k: percentiles(v) for k, v in timings.items()}}
    print(f"results: {save('state_file_eval', result)}")
    print(f"\nstate file at {args.dim} dimensions: {sizes['file_bytes'] / 1024:.1f} KiB\n")
    found: dict[str, int] = defaultdict(int)
    for part in sizes["cores"].values():
        for name, n in part["components"].items():
            found[name] += n
    print("| component | reference engine, KB | this service, KiB (float64) |\n|---|---:|---:|")
    for name, kb in REFERENCE_KB.items():
        print(f"| {name} | {kb} | {found.pop(name, 0) / 1024:.1f} |")
    for name, n in sorted(found.items()):
        print(f"| {name} | - | {n / 1024:.1f} |")
    for kind, part in sizes["cores"].items():
        print(f"| **{kind} part (its blob, with header)** | | **{part['bytes'] / 1024:.1f}** |")
    print("\n| from the file to the first answer | p50 ms | p99 ms |\n|---|---:|---:|")
    for key, stats in result["timings"].items():
        print(f"| {key.replace('_', ' ')} | {stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} |")
    print(f"\n(median total = load_state + first answers: {statistics.median(timings['total']) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
