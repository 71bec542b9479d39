"""Cold start (issue 4): a fresh process that answers from restored learned state imports neither
the graph driver nor Celery.

Importing them is most of what such a process would spend before its first answer; this guards
what it imports, not how long it takes (``python -m bench.workers_restore`` measures that).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.workers._streams import trained_reads

# modules a process that only reads learned state must not import (email.parser: redis-py reading
# its own version from the package metadata for each new connection, ~3 ms each)
NOT_ON_THE_READ_PATH = ("neo4j", "kg.graph", "kg.store", "celery", "kombu", "billiard", "workers.app",
                        "workers.drain", "email.parser")

CHILD = r"""
import json, sys
from service.root import Session
with Session() as session:
    answers = [session.dispatch(json.loads(request)) for request in sys.argv[2:]]
print(json.dumps({"answers": answers, "imported": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


def test_a_fresh_process_answers_reads_without_the_graph_driver_or_celery(env, workers, learn_session) -> None:
    ns = "cold"
    workers("w1")
    reads, expected = trained_reads(learn_session.dispatch, ns, seed=3)

    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(NOT_ON_THE_READ_PATH), *map(json.dumps, reads)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    child = json.loads(out.stdout)
    assert child["answers"] == expected, "the restored state answers like the running service"
    assert child["imported"] == [], f"imported on the read path: {child['imported']}"
