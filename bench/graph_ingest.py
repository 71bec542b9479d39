"""Ingest throughput: the service's ingest against the raw driver on the same server, same run.

    python -m bench.graph_ingest                 # YAGO11k + Wikidata12k, and a 1,000,000-edge stream
    python -m bench.graph_ingest --edges 100000  # a smaller generated stream
    python -m bench.graph_ingest --servers neo4j # one server (default: neo4j,arcadedb, one after the other)

A third small dataset, "job updates", has 2,000 subjects each taking a new job
(``works_at``, functional) in each of 10 rounds: every batch cuts 2,000 stored
facts of 2,000 different subjects.

The baseline writes the same edges with one plain ``UNWIND … MERGE endpoints …
CREATE`` per batch through ``execute_write``: no validation, no idempotency
check, no versions, no interval keys, into a relationship type without indexes.
The service loads the same rows through ``kg.ingest.load_batches``, the loop
``kg ingest`` runs: validation of the next batch in a background thread while
the current one's transaction runs, ``EdgeStore.insert_many`` per batch.  After
each service batch commits, the raw driver writes the same rows (in the main
thread, timed apart), so the two alternate batch by batch and a noisy machine
slows both alike: the ratio stays meaningful.  (The validation thread, bounded
to two batches ahead, may also run during a raw batch.)  Both paths first run once, uncounted, on 20,000 stream edges (a fresh JVM is
slow for its first minute), and each small dataset runs ``--repeat`` times
into fresh namespaces; the run with the median ratio is reported.  Peak memory is
measured separately: the generated stream is loaded once more by ``kg ingest``
in its own process, whose own peak RSS (``VmHWM``) is polled until it exits.  Each
run writes to fresh namespaces; results go to ``bench/results/graph_ingest.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import subprocess
import sys
import time
from pathlib import Path

from bench._common import RESULTS, running_graph, save, server_list
from bench.graph_stream import job_updates, write_edges, write_jsonl
from tqdm import tqdm

from kg import sources
from service.root import Session
from kg.graph import Graph
from kg.ingest import IngestReport, load_batches, now_ms, open_source, validated_batches
from kg.store import EdgeStore

DATA = Path(__file__).resolve().parents[1] / "data" / "temporal-kg"
RAW = """
UNWIND $rows AS row
MERGE (a:RawEntity {ns: $ns, name: row.src})
MERGE (b:RawEntity {ns: $ns, name: row.dst})
CREATE (a)-[:RAW_FACT {id: row.id, relation: row.relation, valid_at: row.valid_at,
                       invalid_at: row.invalid_at, created_at: $now}]->(b)
"""  # the baseline: deliberately the plain driver, not the service's Cypher files
RAW_INDEX = "CREATE CONSTRAINT raw_entity IF NOT EXISTS FOR (n:RawEntity) REQUIRE (n.ns, n.name) IS UNIQUE"


def source_rows(path: Path) -> list[sources.Row]:
    """The readable rows of a source, as ``kg ingest`` gets them (before validation)."""
    return [item for item in open_source(path) if isinstance(item, sources.Row)]


def raw_rows(records: list[dict]) -> list[dict]:
    """The baseline's rows: the same edges with times converted, nothing else done."""
    from kg.timeparse import to_ms

    return [{"id": r["id"], "src": r["src"], "dst": r["dst"], "relation": r.get("relation", "related_to"),
             "valid_at": to_ms(r["valid_at"], "valid_at"),
             "invalid_at": None if r.get("invalid_at") is None else to_ms(r["invalid_at"], "invalid_at")}
            for r in records]


def interleaved(graph: Graph, store: EdgeStore, items: list[sources.Row], batch: int, tag: str) -> dict:
    """Seconds spent by the raw driver and by the service on the same batches, alternating."""
    raw_ns, svc_ns = f"raw-{tag}", f"svc-{tag}"
    created_at = now_ms()
    report = IngestReport(tag, svc_ns)
    bar = tqdm(total=len(items), unit=" edges", desc=tag, mininterval=1.0)
    raw_s = 0.0
    consumed = 0

    def raw_batch(done: int) -> None:
        """After each service commit: the raw driver writes the same source rows."""
        nonlocal raw_s, consumed
        start = time.perf_counter()
        rows = raw_rows([item.record for item in items[consumed:done]])
        if rows:
            graph.write(lambda tx: tx.run(RAW, rows=rows, ns=raw_ns, now=created_at).consume())
        raw_s += time.perf_counter() - start
        bar.update(done - consumed)
        consumed = done

    start = time.perf_counter()
    load_batches(store, svc_ns, validated_batches(items, report, batch, created_at), report, raw_batch)
    svc_s = time.perf_counter() - start - raw_s
    bar.close()
    r = report.result
    return {"raw_s": raw_s, "service_s": svc_s, "inserted": r.inserted,
            "invalidated": r.invalidated, "rejected": len(r.rejected) + sum(report.skipped.values())}


def kg_ingest_peak_rss(path: Path, ns: str, batch: int, home: Path) -> dict:
    """Load ``path`` with ``kg ingest`` in a child process; its wall time and peak RSS.

    The peak is the child's own ``VmHWM``, polled until it exits.  (``wait4``'s
    ``ru_maxrss`` is no good here: Linux carries the parent's high-water mark
    across fork and exec, and this parent holds the whole stream in memory.)
    """
    env = dict(os.environ, KG_HOME=str(home))
    start = time.perf_counter()
    peak_kb = 0
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "ingest", str(path), "-n", ns,
                                 "--batch-size", str(batch), "--restart", "--quiet"],
                                env=env, stderr=err)
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"kg ingest failed:\n{stderr[-2000:]}")
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024,
            "summary": [line.strip() for line in stderr.splitlines() if line.strip()]}


def _vm_hwm_kb(pid: int) -> int:
    """The process's own peak resident set (kB), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def server_peak_rss_mb(home: Path, server: str) -> float | None:
    try:
        return _vm_hwm_kb(int((home / "run" / f"{server}.pid").read_text())) / 1024 or None
    except (OSError, ValueError):
        return None


def measure(name: str, path: Path, graph: Graph, store: EdgeStore, batch: int, tag: str,
            repeat: int = 1) -> dict:
    """Rates and ratio for one source; with ``repeat`` > 1, the run with the median ratio (and all ratios)."""
    records = source_rows(path)
    runs = []
    for r in range(repeat):
        timing = interleaved(graph, store, records, batch, f"{tag}-{name}-{r}")
        raw_rate, svc_rate = len(records) / timing["raw_s"], len(records) / timing["service_s"]
        runs.append({"dataset": name, "edges": len(records), "raw_edges_per_s": raw_rate,
                     "service_edges_per_s": svc_rate, "ratio": svc_rate / raw_rate, **timing})
    result = sorted(runs, key=lambda run: run["ratio"])[len(runs) // 2]
    result["ratios"] = [run["ratio"] for run in runs]
    spread = f"  (ratios of {repeat} runs: {', '.join(f'{x:.2f}' for x in result['ratios'])})" if repeat > 1 else ""
    print(f"{name:>22}: {len(records):>9,} edges  raw {result['raw_edges_per_s']:>8,.0f}/s"
          f"  service {result['service_edges_per_s']:>8,.0f}/s  ratio {result['ratio']:.2f}"
          f"  (inserted {result['inserted']:,}, invalidated {result['invalidated']:,}){spread}", flush=True)
    return result


def warm_up(graph: Graph, store: EdgeStore, stream_path: Path, batch: int, tag: str) -> None:
    """Both paths once on the first 20,000 stream edges, not counted: a fresh JVM runs its first minute slower."""
    rows = source_rows(stream_path)[:20_000]
    interleaved(graph, store, rows, batch, f"{tag}-warmup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=1_000_000, help="size of the generated stream")
    parser.add_argument("--batch", type=int, default=2000, help="edges per transaction (kg ingest: KG_BATCH_SIZE)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each small dataset (median reported)")
    parser.add_argument("--servers", type=server_list, default="neo4j,arcadedb",
                        help="graph servers to measure, one after the other (default: neo4j,arcadedb)")
    parser.add_argument("--skip-datasets", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="skip the separate kg ingest run")
    parser.add_argument("--memory-only", action="store_true", help="only the separate kg ingest run")
    args = parser.parse_args()
    tag = str(int(time.time()))
    stream_path = write_jsonl(RESULTS / f"stream-{args.edges}.jsonl", args.edges)
    payload = {"batch": args.batch, "cpus": os.cpu_count(), "servers": {}}
    for server in args.servers:
        print(f"\n== {server}", flush=True)
        payload["servers"][server] = run_server(server, args, tag, stream_path)
    print(f"results: {save('graph_ingest_memory' if args.memory_only else 'graph_ingest', payload)}")


def run_server(server: str, args: argparse.Namespace, tag: str, stream_path: Path) -> dict:
    """Every measurement on one graph server."""
    settings = running_graph(server)
    results = []
    with Session(settings) as session:
        graph, store = session.graph, session.store
        graph.write(lambda tx: tx.run(RAW_INDEX).consume())
        if not args.memory_only:
            warm_up(graph, store, stream_path, args.batch, tag)
            for name in () if args.skip_datasets else ("yago11k", "wikidata12k"):
                results.append(measure(name, DATA / name, graph, store, args.batch, tag, args.repeat))
            if not args.skip_datasets:
                updates = write_edges(RESULTS / "job-updates-2000x10.jsonl", job_updates(2_000, 10))
                results.append(measure("job-updates-2000x10", updates, graph, store, args.batch, tag, args.repeat))
            results.append(measure(f"stream-{args.edges}", stream_path, graph, store, args.batch, tag))
    memory = None
    if not args.skip_memory:
        memory = kg_ingest_peak_rss(stream_path, f"stream{tag}-{args.edges}", args.batch, settings.home)
        print(f"kg ingest of the stream in its own process: {memory['seconds']:.0f} s,"
              f" peak RSS {memory['peak_rss_mb']:.0f} MB (namespace stream{tag}-{args.edges};"
              f" reuse it with python -m bench.graph_query --namespace-prefix stream{tag})")
    peak = server_peak_rss_mb(settings.home, server)
    print(f"{server} peak RSS so far: {peak or 0:,.0f} MB", flush=True)
    return {"results": results, "kg_ingest_process": memory, "server_peak_rss_mb": peak}


if __name__ == "__main__":
    main()
