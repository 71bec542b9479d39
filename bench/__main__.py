"""Benchmarks: ``python -m bench`` lists them, ``python -m bench NAME [args]`` runs one.

Each writes JSON under ``bench/results/`` and prints a table with medians and the
ratio to a baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> dict[str, str]:
    here = Path(__file__).parent
    out = {}
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if hasattr(module, "main"):
            out[info.name] = (module.__doc__ or "").strip().splitlines()[0]
    return out


def main() -> None:
    benches = available()
    if len(sys.argv) < 2 or sys.argv[1] not in benches:
        print("usage: python -m bench NAME [args]   (each NAME also runs as python -m bench.NAME)\n")
        for name, summary in sorted(benches.items()):
            print(f"  {name:<24} {summary}")
        sys.exit(0 if len(sys.argv) < 2 else 2)
    name = sys.argv.pop(1)
    sys.argv[0] = f"bench.{name}"
    importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
