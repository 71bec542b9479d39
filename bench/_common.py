"""Shared helpers for the benchmarks: the running stack, timing, and result files."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from kg.config import Settings
from service.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"


def running_stack() -> Settings:
    """Settings of the local stack (started if needed, like ``kg up``)."""
    Stack(Settings.from_env()).up(progress=lambda m: print(m, file=sys.stderr))
    return Settings.from_env()


def running_graph(server: str) -> Settings:
    """Settings of a running ``server`` (neo4j or arcadedb), for benchmarks that compare both.

    The stack's own server is the stack's; the other one runs graph only in its own
    state directory beside ``KG_HOME`` (``<KG_HOME>-<server>``), sharing the stack's
    Redis, and is left running for the next benchmark (``kg down`` with that KG_HOME
    stops it).
    """
    main = running_stack()
    if server == main.graph_server:
        return main
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env.update(KG_HOME=f"{main.home}-{server}", KG_GRAPH_SERVER=server, KG_REDIS_URL=main.redis_url or "",
               KG_UP_WORKERS="0", KG_UP_BEAT="false")
    for name in ("KG_GRAPH_HEAP", "KG_GRAPH_PAGECACHE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    Stack(Settings.from_env(env)).up(progress=lambda m: print(m, file=sys.stderr))
    return Settings.from_env(env)


def server_list(text: str) -> list[str]:
    """``--servers`` values: a comma-separated list of graph servers."""
    from kg.config import GRAPH_SERVERS

    servers = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in servers if s not in GRAPH_SERVERS]
    if unknown or not servers:
        raise SystemExit(f"--servers: expected a comma-separated list of {', '.join(GRAPH_SERVERS)}")
    return servers


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3,
            "mean_ms": statistics.fmean(ordered) * 1e3, "n": len(ordered)}


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
