"""Shared helpers for the benchmarks: the running stack, timing, and result files."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from kg.config import Settings
from kg.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"


def running_stack() -> Settings:
    """Settings of the local stack (started if needed, like ``kg up``)."""
    Stack(Settings.from_env()).up(progress=lambda m: print(m, file=sys.stderr))
    return Settings.from_env()


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
