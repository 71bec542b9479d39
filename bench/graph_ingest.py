"""Ingest throughput: the service's ingest against the raw driver on the same server, same run.

    python -m bench.graph_ingest                 # YAGO11k + Wikidata12k, and a 1,000,000-edge stream
    python -m bench.graph_ingest --edges 100000  # a smaller generated stream

The baseline writes the same edges with one plain ``UNWIND … MERGE endpoints …
CREATE`` per batch through ``execute_write``: no validation, no idempotency
check, no versions, no interval keys, into a relationship type without indexes.
The service writes each batch through ``EdgeStore.insert_many`` after
validating the raw records (what ``kg ingest`` does per batch).  Batches of the
two alternate (raw first on even batches, service first on odd ones), so a
noisy machine slows both alike and the ratio stays meaningful.  Peak memory is
measured separately: the generated stream is loaded once more by ``kg ingest``
in its own process and its peak RSS read from the kernel when it exits.  Each
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

from bench._common import RESULTS, running_stack, save
from bench.graph_stream import write_jsonl
from tqdm import tqdm

from kg import sources
from kg.dispatch import Session
from kg.graph import Graph
from kg.ingest import edges_from_records, now_ms, open_source
from kg.store import BatchResult, EdgeStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "temporal-kg"
RAW = """
UNWIND $rows AS row
MERGE (a:RawEntity {ns: $ns, name: row.src})
MERGE (b:RawEntity {ns: $ns, name: row.dst})
CREATE (a)-[:RAW_FACT {id: row.id, relation: row.relation, valid_at: row.valid_at,
                       invalid_at: row.invalid_at, created_at: $now}]->(b)
"""  # the baseline: deliberately the plain driver, not the service's Cypher files
RAW_INDEX = "CREATE CONSTRAINT raw_entity IF NOT EXISTS FOR (n:RawEntity) REQUIRE (n.ns, n.name) IS UNIQUE"


def raw_records(path: Path) -> list[dict]:
    """The records of a source as a pipeline hands them over (before validation)."""
    return [item.record for item in open_source(path) if isinstance(item, sources.Row)]


def raw_rows(records: list[dict]) -> list[dict]:
    """The baseline's rows: the same edges with times converted, nothing else done."""
    from kg.timeparse import to_ms

    return [{"id": r["id"], "src": r["src"], "dst": r["dst"], "relation": r.get("relation", "related_to"),
             "valid_at": to_ms(r["valid_at"], "valid_at"),
             "invalid_at": None if r.get("invalid_at") is None else to_ms(r["invalid_at"], "invalid_at")}
            for r in records]


def interleaved(graph: Graph, store: EdgeStore, records: list[dict], batch: int, tag: str) -> dict:
    """Seconds spent by the raw driver and by the service on the same batches, alternating."""
    raw_ns, svc_ns = f"raw-{tag}", f"svc-{tag}"
    created_at = now_ms()
    raw_s = svc_s = 0.0
    result = BatchResult()
    bar = tqdm(total=len(records), unit=" edges", desc=tag, mininterval=1.0)
    for number, k in enumerate(range(0, len(records), batch)):
        chunk = records[k:k + batch]

        def raw() -> float:
            start = time.perf_counter()
            rows = raw_rows(chunk)
            graph.write(lambda tx: tx.run(RAW, rows=rows, ns=raw_ns, now=created_at).consume())
            return time.perf_counter() - start

        def service() -> float:
            start = time.perf_counter()
            edges, _rejected = edges_from_records(chunk, created_at)
            result.add(store.insert_many(svc_ns, edges))
            return time.perf_counter() - start

        if number % 2:
            svc_s += service()
            raw_s += raw()
        else:
            raw_s += raw()
            svc_s += service()
        bar.update(len(chunk))
    bar.close()
    return {"raw_s": raw_s, "service_s": svc_s, "inserted": result.inserted,
            "invalidated": result.invalidated, "rejected": len(result.rejected)}


def kg_ingest_peak_rss(path: Path, ns: str, batch: int, home: Path) -> dict:
    """Load ``path`` with ``kg ingest`` in a child process; its wall time and peak RSS."""
    env = dict(os.environ, KG_HOME=str(home))
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kg.cli", "ingest", str(path), "-n", ns,
                                 "--batch-size", str(batch), "--restart", "--quiet"],
                                env=env, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the stack's
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"kg ingest failed:\n{stderr[-2000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "summary": [line.strip() for line in stderr.splitlines() if line.strip()]}


def server_peak_rss_mb(home: Path) -> float | None:
    try:
        pid = int((home / "run" / "arcadedb.pid").read_text())
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def measure(name: str, path: Path, graph: Graph, store: EdgeStore, batch: int, tag: str) -> dict:
    records = raw_records(path)
    timing = interleaved(graph, store, records, batch, f"{tag}-{name}")
    raw_rate, svc_rate = len(records) / timing["raw_s"], len(records) / timing["service_s"]
    result = {"dataset": name, "edges": len(records), "raw_edges_per_s": raw_rate,
              "service_edges_per_s": svc_rate, "ratio": svc_rate / raw_rate, **timing}
    print(f"{name:>22}: {len(records):>9,} edges  raw {raw_rate:>8,.0f}/s  service {svc_rate:>8,.0f}/s"
          f"  ratio {svc_rate / raw_rate:.2f}  (inserted {timing['inserted']:,},"
          f" invalidated {timing['invalidated']:,})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=1_000_000, help="size of the generated stream")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--skip-datasets", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="skip the separate kg ingest run")
    parser.add_argument("--memory-only", action="store_true", help="only the separate kg ingest run")
    args = parser.parse_args()
    settings = running_stack()
    tag = str(int(time.time()))
    results = []
    stream_path = write_jsonl(RESULTS / f"stream-{args.edges}.jsonl", args.edges)
    with Session(settings) as session:
        graph, store = session.graph, session.store
        graph.write(lambda tx: tx.run(RAW_INDEX).consume())
        if not args.memory_only:
            for name in () if args.skip_datasets else ("yago11k", "wikidata12k"):
                results.append(measure(name, DATA / name, graph, store, args.batch, tag))
            results.append(measure(f"stream-{args.edges}", stream_path, graph, store, args.batch, tag))
    memory = None
    if not args.skip_memory:
        memory = kg_ingest_peak_rss(stream_path, f"stream{tag}-{args.edges}", args.batch, settings.home)
        print(f"kg ingest of the stream in its own process: {memory['seconds']:.0f} s,"
              f" peak RSS {memory['peak_rss_mb']:.0f} MB (namespace stream{tag}-{args.edges};"
              f" reuse it with python -m bench.graph_query --namespace-prefix stream{tag})")
    payload = {"batch": args.batch, "results": results, "kg_ingest_process": memory,
               "server_peak_rss_mb": server_peak_rss_mb(settings.home), "cpus": os.cpu_count()}
    print(f"results: {save('graph_ingest_memory' if args.memory_only else 'graph_ingest', payload)}")


if __name__ == "__main__":
    main()
