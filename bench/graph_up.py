"""Cold start of each graph server: ``kg up`` in a fresh state directory to the first answer.

    python -m bench.graph_up                     # neo4j and arcadedb, 3 starts each
    python -m bench.graph_up --runs 5 --servers neo4j

Each run starts the graph server alone (the stack's Redis is used, no workers) in
a new temporary ``KG_HOME`` with a new empty database, and times, from the
command's start: ``kg up`` returning (the server printed its ready line and
answered a ping), then the first ``query_at`` answer from a new ``kg dispatch``
process, then a restart of the same store (``kg down``, ``kg up``).  The
baseline is the fixed cost those numbers share: the same ``kg dispatch`` against
a server that is already running.  Reports medians; peak RSS of the server after
the first answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import running_stack, save, server_list
from bench.graph_ingest import _vm_hwm_kb

QUERY = json.dumps({"verb": "query_at", "body": {"namespace": "cold", "src": "alice", "t": 1}}) + "\n"


def kg(env: dict[str, str], *args: str, stdin: str | None = None) -> float:
    """Seconds one ``kg`` command took; exits on a failure."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, input=stdin,
                         capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    answered = not stdin or all(json.loads(line)["ok"] for line in out.stdout.splitlines())
    if out.returncode != 0 or not answered:
        raise SystemExit(f"kg {' '.join(args)} failed:\n{out.stderr[-2000:]}{out.stdout[-500:]}")
    return seconds


def one_run(server: str, redis_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"kg-up-{server}-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
        env.update(KG_HOME=home, KG_GRAPH_SERVER=server, KG_REDIS_URL=redis_url,
                   KG_UP_WORKERS="0", KG_UP_BEAT="false")
        try:
            up = kg(env, "up")
            first = kg(env, "dispatch", stdin=QUERY)
            peak = _vm_hwm_kb(int((Path(home) / "run" / f"{server}.pid").read_text())) / 1024
            warm = kg(env, "dispatch", stdin=QUERY)
            kg(env, "down")
            restart = kg(env, "up")
            restart_first = kg(env, "dispatch", stdin=QUERY)
        finally:
            subprocess.run([sys.executable, "-m", "service.cli", "down"], env=env, capture_output=True, timeout=120)
    return {"up_s": up, "first_answer_s": up + first, "warm_dispatch_s": warm,
            "restart_first_answer_s": restart + restart_first, "server_peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", type=server_list, default="neo4j,arcadedb")
    args = parser.parse_args()
    redis_url = running_stack().redis_url or ""
    results = {}
    print(f"{'server':<9} {'kg up s':>8} {'1st answer s':>13} {'restart->answer s':>18} "
          f"{'warm dispatch s':>16} {'peak RSS MB':>12}")
    for server in args.servers:
        runs = [one_run(server, redis_url) for _ in range(args.runs)]
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        results[server] = {"median": med, "runs": runs}
        print(f"{server:<9} {med['up_s']:>8.1f} {med['first_answer_s']:>13.1f} {med['restart_first_answer_s']:>18.1f}"
              f" {med['warm_dispatch_s']:>16.2f} {med['server_peak_rss_mb']:>12,.0f}", flush=True)
    print(f"results: {save('graph_up', {'runs': args.runs, 'servers': results})}")


if __name__ == "__main__":
    main()
