"""``query_at`` latency at two graph sizes, against a single indexed lookup in the same run.

    python -m bench.graph_query                       # 100,000 and 1,000,000 edges
    python -m bench.graph_query --sizes 100000        # one size
    python -m bench.graph_query --servers neo4j       # one server (default: neo4j,arcadedb)

For each size a namespace is loaded with the generated stream (bench.graph_stream:
ordinary subjects with a few edges, 5 hubs with 1,500 edges and 3,900 versions
each, only a few valid at any time).  Then, interleaved sample by sample, it
times: the baseline (one indexed node lookup ``MATCH (n:Entity {ns, name})``
through ``execute_read``, the cheapest round trip that touches an index), and
``EdgeStore.query_at`` for ordinary subjects and hubs, current and ``known_at``,
at random times, and ``EdgeStore.neighbourhood`` (attention's subgraph) 3 hops out of
an ordinary subject, current and ``known_at``, next to the same read with every hop
by time keys (``scan_limit=0``, how it read before).  Reports p50/p99 and the p50
ratio to the baseline.
"""

from __future__ import annotations

import argparse
import random
import time

from tqdm import tqdm

from bench._common import percentiles, running_graph, save, server_list
from bench.graph_stream import LEARNED_FROM, START, learned_step, stream
from service.root import Session
from kg.errors import NotFound
from kg.store import EdgeStore
from kg.ingest import changes_from_records

LOOKUP = "MATCH (n:Entity {ns: $ns, name: $name}) RETURN n.name AS name"  # the baseline, plain driver


def load(store, ns: str, n: int, batch: int = 2000) -> float:
    records = list(stream(n))
    start = time.perf_counter()
    for k in tqdm(range(0, n, batch), desc=f"load {n:,}", unit=" batches"):
        edges, _ = changes_from_records(records[k:k + batch], None)
        store.insert_many(ns, edges)
    return time.perf_counter() - start


def measure(session, ns: str, n: int, samples: int, seed: int = 11) -> dict:
    rng = random.Random(seed)
    store, graph = session.store, session.graph
    subjects = max(1, (n - 5 * 1500) // 5)
    learned_to = LEARNED_FROM + n * learned_step(n)
    keyed = EdgeStore(graph, store.functional, scan_limit=0)
    kinds = {"lookup": [], "ordinary_current": [], "ordinary_known_at": [], "hub_current": [],
             "hub_known_at": [], "3_hops_current": [], "3_hops_known_at": [], "3_hops_by_keys_only": []}
    sizes = {k: [] for k in kinds}

    def timed(kind, fn):
        start = time.perf_counter()
        out = fn()
        kinds[kind].append(time.perf_counter() - start)
        sizes[kind].append(len(out))

    for _ in tqdm(range(samples), desc=f"query {n:,}"):
        person, hub = f"p{rng.randrange(subjects)}", f"hub{rng.randrange(5)}"
        t = START + rng.randrange(70 * 365) * 86_400_000
        known = LEARNED_FROM + rng.randrange(learned_to - LEARNED_FROM)
        timed("lookup", lambda: graph.read(lambda tx: tx.run(LOOKUP, ns=ns, name=person).data()))
        timed("ordinary_current", lambda: store.query_at(ns, person, t))
        timed("ordinary_known_at", lambda: store.query_at(ns, person, t, known))
        timed("hub_current", lambda: store.query_at(ns, hub, t))
        timed("hub_known_at", lambda: store.query_at(ns, hub, t, known))
        timed("3_hops_current", lambda: store.neighbourhood(ns, person, 3, t))
        timed("3_hops_known_at", lambda: store.neighbourhood(ns, person, 3, t, known))
        timed("3_hops_by_keys_only", lambda: keyed.neighbourhood(ns, person, 3, t))
    base = percentiles(kinds["lookup"])["p50_ms"]
    report = {}
    for kind, samples_s in kinds.items():
        stats = percentiles(samples_s)
        stats["ratio_p50_to_lookup"] = stats["p50_ms"] / base
        stats["mean_rows"] = sum(sizes[kind]) / len(sizes[kind])
        report[kind] = stats
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--servers", type=server_list, default="neo4j,arcadedb",
                        help="graph servers to measure, one after the other (default: neo4j,arcadedb)")
    parser.add_argument("--namespace-prefix", default=None,
                        help="namespaces are <prefix>-<size>; one already loaded is reused")
    args = parser.parse_args()
    prefix = args.namespace_prefix or f"q{int(time.time())}"
    results = {}
    for server in args.servers:
        settings = running_graph(server)
        results[server] = {}
        with Session(settings) as session:
            for n in args.sizes:
                ns = f"{prefix}-{n}"
                load_s = None
                try:
                    session.store.get_edge(ns, "hub0-job0")  # loaded by an earlier run: reuse it
                except NotFound:
                    load_s = load(session.store, ns, n)
                report = measure(session, ns, n, args.samples)
                results[server][str(n)] = {"namespace": ns, "load_seconds": load_s, **report}
                print(f"\n{server}, {n:,} edges (namespace {ns})")
                print(f"{'query':<20} {'p50 ms':>8} {'p99 ms':>8} {'x lookup':>9} {'rows':>6}")
                for kind, stats in report.items():
                    print(f"{kind:<20} {stats['p50_ms']:>8.2f} {stats['p99_ms']:>8.2f}"
                          f" {stats['ratio_p50_to_lookup']:>9.2f} {stats['mean_rows']:>6.1f}", flush=True)
    print(f"results: {save('graph_query', {'samples': args.samples, 'servers': results})}")


if __name__ == "__main__":
    main()
