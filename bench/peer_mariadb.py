"""The service against MariaDB's bi-temporal tables on the same stream, same run: as-of reads, ingest, invalidation.

    python -m bench.peer_mariadb                          # 100,000 edges, on neo4j then arcadedb
    python -m bench.peer_mariadb --edges 1000000          # the larger stream
    python -m bench.peer_mariadb --servers neo4j          # one graph server

MariaDB (Debian's ``mariadb-server`` 10.11; ``make bench-setup`` installs it) runs as its own
server under ``bench/results/peer_mariadb-<edges>/`` (see ``bench._mariadb``: loopback port, durable
commits, a buffer pool as large as the graph server's heap plus page cache), reached over TCP
through server-side prepared statements.  For each graph server, the same generated stream
(``bench.graph_stream``: ordinary subjects, 5 hubs of 1,500 facts whose 1,200 ``works_at`` facts
close each other) goes into a fresh namespace of the service (``EdgeStore.insert_many`` on the
running server, in process) and a fresh table of MariaDB, batch by batch, alternating, after an
uncounted warm-up of both.  Then ``--invalidations`` explicit invalidations of random ordinary
edges (half one per call, alternating; the other half ``--bulk`` per call: ``invalidate_many``,
and on MariaDB one transaction of bulk updates), then ``--read-warmup`` seconds of uncounted
questions and ``--samples`` rounds of questions, each asked of both, one after the other: a baseline indexed
lookup, ``query_at`` of an ordinary subject and of a hub, current and ``known_at``, and the 3-hop
neighbourhood (the service's BFS against a recursive CTE).  Last, ``--questions`` questions
about ordinary subjects (and a tenth as many about hubs) are asked one per call and then
``--many`` per call (``query_at_many``; MariaDB joins a ``JSON_TABLE`` of the questions to the
table, one statement per time axis), ``--hops`` 3-hop neighbourhoods one per call and then
``--hops-many`` per call (``neighbourhood_many``; MariaDB: one transaction of CTEs), and half of
``--questions`` known_at questions through a store sealed through the stream's system time
(``KG_SEALED_THROUGH``), asked twice: the second time from process memory.  Every answer is compared (both time
axes: valid interval, system start and ``invalidated_by`` of each version; the edges of the
neighbourhood); misses are counted and reported.  Results go to
``bench/results/peer_mariadb-<edges>-<servers>.json`` (one MariaDB per size, so runs of two sizes
can share the machine).
"""

from __future__ import annotations

import argparse
import random
import time
from itertools import islice
from typing import Iterable, Iterator

from tqdm import tqdm

from bench._common import RESULTS, percentiles, running_graph, save, server_list
from bench._mariadb import Peer, Server, buffer_pool, service_answer
from bench.graph_stream import HUB_KNOWS, HUB_WORKS_AT, LEARNED_FROM, START, learned_step, stream
from kg.config import Settings
from kg.ingest import changes_from_records
from service.root import Session

DAY_MS = 86_400_000
KINDS = ("lookup", "ordinary_current", "ordinary_known_at", "hub_current", "hub_known_at",
         "3_hops_current", "3_hops_known_at")


def batches(records: Iterable[dict], size: int) -> Iterator[list]:
    """The records as edges, ``size`` at a time, made as they are loaded (a 10M stream does not
    fit in memory as objects)."""
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield changes_from_records(chunk, None)[0]


def timed_pair(spent: dict[str, float], service, mariadb, suffix: str = "") -> tuple:
    """Run the service's call, then MariaDB's, adding each one's seconds to ``spent`` (keys
    ``service<suffix>`` and ``mariadb<suffix>``); their answers."""
    start = time.perf_counter()
    ours = service()
    middle = time.perf_counter()
    theirs = mariadb()
    spent["service" + suffix] += middle - start
    spent["mariadb" + suffix] += time.perf_counter() - middle
    return ours, theirs


def ingest(store, peer: Peer, ns: str, loads: Iterable[list], batches_total: int, desc: str) -> dict:
    """Seconds each side spent on the same batches, alternating batch by batch. The service's
    side is what ``kg ingest`` runs (:func:`kg.ingest.load_batches`): after a batch of only new
    edges the next one skips reading its ids."""
    spent = {"service": 0.0, "mariadb": 0.0}
    edges = 0
    expect_new = False
    for edges_batch in tqdm(loads, desc=desc, total=batches_total, unit=" batches", mininterval=2.0):
        result, _ = timed_pair(spent, lambda: store.insert_many(ns, edges_batch, expect_new=expect_new),
                               lambda: peer.insert_many(edges_batch))
        expect_new = result.inserted == len(edges_batch)
        edges += len(edges_batch)
    return {"edges": edges, **{f"{side}_edges_per_s": edges / s for side, s in spent.items()}}


def invalidations(n: int, count: int, seed: int = 5) -> list[tuple[str, int, int]]:
    """(edge id, invalid_at, expired_at) for random ordinary edges of the ``n``-edge stream,
    expired after the stream was learned, a step apart, each ending its fact 1 day to 10 years
    after it started.  The picks are positions among the ordinary edges (every edge but the hubs'),
    found in one more pass over the stream, so the stream is never held in memory."""
    rng = random.Random(seed)
    ordinary = max(0, n - 5 * (HUB_WORKS_AT + HUB_KNOWS))
    positions = rng.sample(range(ordinary), min(count, ordinary))
    wanted = {p: k for k, p in enumerate(positions)}
    picked: list[dict] = [{}] * len(positions)
    seen = 0
    for record in stream(n):
        if record["id"].startswith("e"):
            if seen in wanted:
                picked[wanted[seen]] = record
            seen += 1
    step = learned_step(n)
    learned = LEARNED_FROM + n * step
    return [(r["id"], r["valid_at"] + rng.randrange(1, 3650) * DAY_MS, learned + (k + 1) * step)
            for k, r in enumerate(picked)]


def invalidate(store, peer: Peer, ns: str, items: list[tuple[str, int, int]]) -> dict:
    spent = {"service": 0.0, "mariadb": 0.0}
    for edge_id, invalid_at, expired_at in tqdm(items, desc="invalidate, one per call", mininterval=2.0):
        timed_pair(spent, lambda: store.invalidate_edge(ns, edge_id, invalid_at, expired_at),
                   lambda: peer.invalidate(edge_id, invalid_at, expired_at))
    return {"count": len(items), **{f"{side}_per_s": len(items) / s for side, s in spent.items()}}


def invalidate_bulk(store, peer: Peer, ns: str, items: list[tuple[str, int, int]], size: int) -> dict:
    """The same invalidations in calls of ``size`` (one transaction each, one expired_at per call)."""
    spent = {"service": 0.0, "mariadb": 0.0}
    for k in range(0, len(items), size):
        chunk = [(edge_id, invalid_at, items[k][2]) for edge_id, invalid_at, _ in items[k:k + size]]
        timed_pair(spent, lambda: store.invalidate_many(ns, chunk), lambda: peer.invalidate_many(chunk))
    return {"count": len(items), "per_call": size, **{f"{side}_per_s": len(items) / s for side, s in spent.items()}}


def batched(store, peer: Peer, ns: str, n: int, count: int, size: int, hubs: bool, seed: int = 13) -> dict:
    """``count`` questions (ordinary subjects or hubs, half current and half known_at) asked one per
    call and then ``size`` per call, of both; the batched answers are compared."""
    rng = random.Random(seed)
    asked = []
    for k in range(count):
        person, hub, t, known = questions(rng, n)
        asked.append((hub if hubs else person, t, known if k % 2 else None))
    spent = {key: 0.0 for key in ("service_single", "mariadb_single", "service_batched", "mariadb_batched")}
    timed_pair(spent, lambda: [store.query_at(ns, *q) for q in asked], lambda: [peer.query_at(*q) for q in asked],
               "_single")
    differ = 0
    for k in range(0, count, size):
        chunk = asked[k:k + size]
        ours, theirs = timed_pair(spent, lambda: store.query_at_many(ns, chunk), lambda: peer.query_at_many(chunk),
                                  "_batched")
        differ += sum(sorted(service_answer(v) for v in a) != b for a, b in zip(ours, theirs))
    return {"questions": count, "per_call": size, "compared": count, "differ": differ,
            **{f"{key}_per_s": count / s for key, s in spent.items()}}


def hops_batched(store, peer: Peer, ns: str, n: int, count: int, size: int, seed: int = 17) -> dict:
    """``count`` 3-hop neighbourhoods of ordinary subjects (half current, half known_at) one per call
    and then ``size`` per call (``neighbourhood_many``; MariaDB: its recursive CTE per question,
    one transaction per call), of both; the batched answers are compared."""
    rng = random.Random(seed)
    asked = []
    for k in range(count):
        person, _, t, known = questions(rng, n)
        asked.append((person, 3, t, known if k % 2 else None))
    spent = {key: 0.0 for key in ("service_single", "mariadb_single", "service_batched", "mariadb_batched")}
    timed_pair(spent, lambda: [store.neighbourhood(ns, *q) for q in asked],
               lambda: [peer.neighbourhood(*q) for q in asked], "_single")
    differ = 0
    for k in range(0, count, size):
        chunk = asked[k:k + size]
        ours, theirs = timed_pair(spent, lambda: store.neighbourhood_many(ns, chunk),
                                  lambda: peer.neighbourhood_many(chunk), "_batched")
        differ += sum(hop_rows(a) != b for a, b in zip(ours, theirs))
    return {"questions": count, "per_call": size, "compared": count, "differ": differ,
            **{f"{key}_per_s": count / s for key, s in spent.items()}}


def sealed(session, peer: Peer, ns: str, n: int, count: int, seed: int = 19) -> dict:
    """``count`` known_at questions about ordinary subjects, one per call, through a store whose
    history is sealed through the end of the stream's system time (``KG_SEALED_THROUGH``): asked
    once (the store reads and keeps each subject's sealed history), then again (answered from
    process memory), against MariaDB asked the same questions each time; all answers compared."""
    from kg.store import EdgeStore

    rng = random.Random(seed)
    asked = []
    for _ in range(count):
        person, _, t, known = questions(rng, n)
        asked.append((person, t, known))
    store = EdgeStore(session.graph, session.store.functional, sealed_through=LEARNED_FROM + n * learned_step(n))
    out: dict = {"questions": count, "compared": 2 * count, "differ": 0}
    for name in ("first", "again"):
        spent = {"service": 0.0, "mariadb": 0.0}
        for question in asked:
            ours, theirs = timed_pair(spent, lambda: store.query_at(ns, *question), lambda: peer.query_at(*question))
            out["differ"] += sorted(service_answer(v) for v in ours) != sorted(theirs)
        out.update({f"{side}_{name}_per_s": count / s for side, s in spent.items()})
    return out


def hop_rows(rows: list[dict]) -> list[tuple]:
    return sorted((r["edge_id"], r["src"], r["dst"], r["relation"], r["valid_from"]) for r in rows)


def questions(rng: random.Random, n: int) -> tuple[str, str, int, int]:
    """A random ordinary subject, hub, valid time and known_at inside the learned span."""
    subjects = max(1, (n - 5 * 1500) // 5)
    learned_to = LEARNED_FROM + n * learned_step(n)
    return (f"p{rng.randrange(subjects)}", f"hub{rng.randrange(5)}", START + rng.randrange(70 * 365) * DAY_MS,
            LEARNED_FROM + rng.randrange(learned_to - LEARNED_FROM))


def query(session, peer: Peer, ns: str, n: int, samples: int, warm_s: float = 0.0,
          seed: int = 11) -> tuple[dict, dict]:
    """Per kind: (service seconds, MariaDB seconds) of every sample; and the misses.

    First ``warm_s`` seconds of the same kinds of questions (drawn with another seed), timed by nobody:
    after a start and a load of writes Neo4j's read path needed 20-50 s of reads to reach its
    steady speed (a lookup's p50 went from 1.61 to 0.65 ms), so without it the first questions
    measure the JIT, not the store.
    """
    rng = random.Random(seed)
    store, graph = session.store, session.graph
    lookup = "MATCH (n:Entity {ns: $ns, name: $name}) RETURN n.name AS name"  # graph_query's baseline
    times = {k: ([], []) for k in KINDS}
    misses = {"compared": 0, "differ": 0, "examples": []}

    def both(kind, svc, sql, comparable=None, timed=True):
        start = time.perf_counter()
        ours = svc()
        middle = time.perf_counter()
        theirs = sql()
        if not timed:
            return
        times[kind][0].append(middle - start)
        times[kind][1].append(time.perf_counter() - middle)
        if comparable is not None:
            misses["compared"] += 1
            if comparable(ours) != sorted(theirs):
                misses["differ"] += 1
                if len(misses["examples"]) < 5:
                    misses["examples"].append(kind)

    answers = lambda views: sorted(service_answer(v) for v in views)  # noqa: E731

    def ask(person: str, hub: str, t: int, known: int, timed: bool) -> None:
        both("lookup", lambda: graph.read(lambda tx: tx.run(lookup, ns=ns, name=person).data()),
             lambda: peer.lookup(person), timed=timed)
        both("ordinary_current", lambda: store.query_at(ns, person, t), lambda: peer.query_at(person, t), answers, timed)
        both("ordinary_known_at", lambda: store.query_at(ns, person, t, known),
             lambda: peer.query_at(person, t, known), answers, timed)
        both("hub_current", lambda: store.query_at(ns, hub, t), lambda: peer.query_at(hub, t), answers, timed)
        both("hub_known_at", lambda: store.query_at(ns, hub, t, known), lambda: peer.query_at(hub, t, known),
             answers, timed)
        both("3_hops_current", lambda: store.neighbourhood(ns, person, 3, t),
             lambda: peer.neighbourhood(person, 3, t), hop_rows, timed)
        both("3_hops_known_at", lambda: store.neighbourhood(ns, person, 3, t, known),
             lambda: peer.neighbourhood(person, 3, t, known), hop_rows, timed)

    warm_rng, deadline = random.Random(seed + 1), time.monotonic() + warm_s
    with tqdm(desc=f"read warm-up, {warm_s:.0f} s", unit=" rounds", mininterval=2.0, disable=not warm_s) as bar:
        while time.monotonic() < deadline:
            ask(*questions(warm_rng, n), timed=False)
            bar.update()
    for _ in tqdm(range(samples), desc=f"questions {n:,}", mininterval=2.0):
        ask(*questions(rng, n), timed=True)
    return times, misses


def report_queries(times: dict) -> dict:
    out = {}
    for kind, (ours, theirs) in times.items():
        svc, sql = percentiles(ours), percentiles(theirs)
        out[kind] = {"service": svc, "mariadb": sql, "ratio_p50": svc["p50_ms"] / sql["p50_ms"]}
    return out


def run_server(server_name: str, mariadb: Server, args) -> dict:
    settings = running_graph(server_name)
    total = -(-args.edges // args.batch)
    tag = f"peer{int(time.time())}"
    with Session(settings) as session:
        conn = mariadb.connect()
        try:
            peer = Peer(conn, frozenset(settings.functional_relations))
            store = session.store
            if args.warmup:
                peer.create()
                ingest(store, peer, f"{tag}-warm", batches(stream(args.warmup, seed=3), args.batch),
                       -(-args.warmup // args.batch), f"{server_name}: warm-up")
            peer.create()
            ns = f"{tag}-{args.edges}"
            result: dict = {"namespace": ns, "edges": args.edges}
            result["ingest"] = ingest(store, peer, ns, batches(stream(args.edges), args.batch), total,
                                      f"{server_name}: load {args.edges:,}")
            items = invalidations(args.edges, args.invalidations)
            half = len(items) // 2
            result["invalidate_one_per_call"] = invalidate(store, peer, ns, items[:half])
            result["invalidate_bulk"] = invalidate_bulk(store, peer, ns, items[half:], args.bulk)
            times, misses = query(session, peer, ns, args.edges, args.samples, args.read_warmup)
            result["queries"] = report_queries(times)
            for hubs in (False, True):
                found = batched(store, peer, ns, args.edges, args.questions // (10 if hubs else 1), args.many, hubs)
                result["batched_hubs" if hubs else "batched_ordinary"] = found
                misses["compared"] += found["compared"]
                misses["differ"] += found["differ"]
            extra = (("batched_3_hops", lambda: hops_batched(store, peer, ns, args.edges, args.hops, args.hops_many)),
                     ("sealed_known_at", lambda: sealed(session, peer, ns, args.edges, args.questions // 2)))
            for name, run in extra:
                found = result[name] = run()
                misses["compared"] += found["compared"]
                misses["differ"] += found["differ"]
            result["answers"] = misses
        finally:
            conn.close()
    return result


def show(server_name: str, result: dict) -> None:
    print(f"\n{server_name}, {result['edges']:,} edges (namespace {result['namespace']})")
    print(f"{'work':<22} {'service p50/p99 ms':>20} {'MariaDB p50/p99 ms':>20} {'ratio p50':>10}")
    for kind, r in result["queries"].items():
        s, m = r["service"], r["mariadb"]
        print(f"{kind:<22} {s['p50_ms']:>9.2f} /{s['p99_ms']:>8.2f} {m['p50_ms']:>9.2f} /{m['p99_ms']:>8.2f}"
              f" {r['ratio_p50']:>10.2f}")
    for name, unit in (("ingest", "edges_per_s"), ("invalidate_one_per_call", "per_s"),
                       ("invalidate_bulk", "per_s")):
        if name in result:
            r = result[name]
            print(f"{name:<22} {r['service_' + unit]:>14,.0f} /s {r['mariadb_' + unit]:>14,.0f} /s"
                  f" {r['service_' + unit] / r['mariadb_' + unit]:>10.2f}")
    for name in ("batched_ordinary", "batched_hubs", "batched_3_hops"):
        r = result[name]
        print(f"{name:<22} one per call: service {r['service_single_per_s']:,.0f} /s, MariaDB"
              f" {r['mariadb_single_per_s']:,.0f} /s; {r['per_call']} per call: service"
              f" {r['service_batched_per_s']:,.0f} /s, MariaDB {r['mariadb_batched_per_s']:,.0f} /s,"
              f" ratio {r['service_batched_per_s'] / r['mariadb_batched_per_s']:.2f}")
    r = result["sealed_known_at"]
    print(f"{'sealed_known_at':<22} first ask: service {r['service_first_per_s']:,.0f} /s, MariaDB"
          f" {r['mariadb_first_per_s']:,.0f} /s; asked again: service {r['service_again_per_s']:,.0f} /s,"
          f" MariaDB {r['mariadb_again_per_s']:,.0f} /s, ratio {r['service_again_per_s'] / r['mariadb_again_per_s']:.2f}")
    a = result["answers"]
    print(f"answers compared: {a['compared']:,}, different: {a['differ']:,} {a['examples'] or ''}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=100_000, help="stream size (1000000 for the larger run)")
    parser.add_argument("--servers", type=server_list, default="neo4j,arcadedb",
                        help="graph servers, one after the other (default: neo4j,arcadedb)")
    parser.add_argument("--samples", type=int, default=300, help="rounds of questions")
    parser.add_argument("--read-warmup", type=float, default=60.0,
                        help="seconds of uncounted questions of both before the timed ones (0: none)")
    parser.add_argument("--invalidations", type=int, default=2_000,
                        help="half one per call, half in calls of --bulk (default 2000)")
    parser.add_argument("--bulk", type=int, default=500, help="invalidations per bulk call")
    parser.add_argument("--questions", type=int, default=5_000,
                        help="ordinary-subject questions asked one per call and batched (a tenth as many of hubs)")
    parser.add_argument("--many", type=int, default=500, help="questions per batched call (query_at_many)")
    parser.add_argument("--hops", type=int, default=500,
                        help="3-hop neighbourhoods asked one per call and batched (neighbourhood_many)")
    parser.add_argument("--hops-many", type=int, default=100, help="neighbourhoods per batched call")
    parser.add_argument("--batch", type=int, default=2_000, help="ingest batch (edges per transaction)")
    parser.add_argument("--warmup", type=int, default=20_000, help="uncounted edges loaded first (0: none)")
    args = parser.parse_args()
    main_settings = Settings.from_env()
    pool = buffer_pool(main_settings.graph_heap, main_settings.graph_pagecache)
    results = {"edges": args.edges, "samples": args.samples, "read_warmup_s": args.read_warmup,
               "buffer_pool_bytes": pool, "servers": {}}
    with Server(RESULTS / f"peer_mariadb-{args.edges}", pool) as mariadb:
        for server_name in args.servers:
            result = run_server(server_name, mariadb, args)
            results["servers"][server_name] = result
            show(server_name, result)
    print(f"results: {save(f'peer_mariadb-{args.edges}-' + '-'.join(args.servers), results)}")


if __name__ == "__main__":
    main()
