"""The original pipeline end to end through ``kg dispatch`` and HTTP, across a worker restart.

Uses the session stack of tests/conftest.py (``kg up``: ArcadeDB, Redis with AOF, one worker, beat).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from bench._procs import REPO, free_port, wait_for
from service.stack import Stack

T1, T2 = 1_546_300_800_000, 1_622_505_600_000
DIM = 8


def kg_dispatch(env: dict, requests: list[dict]) -> list[dict]:
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    done = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=lines, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def post(url: str, request: dict, key: str | None) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/v1/dispatch", data=json.dumps(request).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def http(kg_env: dict, tmp_path):
    port = free_port()
    env = dict(kg_env, KG_API_KEY="s3cret-key", KG_HTTP_PORT=str(port))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(url + "/openapi.json", timeout=1).read()
            return True
        except OSError:
            return False

    wait_for(up, 30, "kg serve to listen", every=0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def test_pipeline_through_cli_and_http_survives_a_worker_restart(stack_settings, kg_env, http) -> None:
    ns = f"e2e-{time.time_ns()}"
    x = [0.3, -0.2, 0.9, 0.1, 0.0, 0.5, -0.7, 0.2]
    pipeline = [
        {"verb": "init_instant", "body": {"namespace": ns, "targets": ["gpt", "mixtral"], "in_dim": DIM}},
        {"verb": "init_router", "body": {"namespace": ns, "targets": ["gpt", "mixtral"], "in_dim": DIM}},
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "acme", "src": "alice", "dst": "Acme",
                                         "relation": "works_at", "valid_at": T1, "created_at": T1 + 86_400_000}},
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "globex", "src": "alice", "dst": "Globex",
                                         "relation": "works_at", "valid_at": T2, "created_at": T2 + 86_400_000}},
        {"verb": "route", "body": {"namespace": ns, "embedding": x, "estimated_tokens": 3000}},
        {"verb": "feedback", "body": {"namespace": ns, "embedding": x, "model": "mixtral",
                                      "payload": {"quality": 0.95}, "now_ms": T2}},
        {"verb": "record_outcome", "body": {"namespace": ns, "target": "gpt", "quality": 0.2, "embedding": x}},
        {"verb": "query_at", "body": {"namespace": ns, "src": "alice", "t": T2 + 1}},
        {"verb": "health", "body": {"namespace": ns}},
    ]
    out = kg_dispatch(kg_env, pipeline)
    assert [o["ok"] for o in out] == [True] * len(pipeline), out
    assert [e["dst"] for e in out[7]["data"]] == ["Globex"]  # functional works_at: Acme was closed
    health = out[8]["data"]
    assert health["graph"]["reachable"] and health["redis"]["reachable"]
    assert health["updates"] == {"instant": 1, "ewc": 0, "router": 1, "attention": 0, "patterns": 0}
    assert any(w["role"] == "worker" for w in health["workers"])

    reads = [
        {"verb": "route", "body": {"namespace": ns, "embedding": x, "estimated_tokens": 3000}},
        {"verb": "apply_adapter", "body": {"namespace": ns, "embedding": x}},
        {"verb": "query_at", "body": {"namespace": ns, "src": "alice", "t": T2 + 1}},
        {"verb": "query_at", "body": {"namespace": ns, "src": "alice", "t": T2 + 1,
                                      "known_at": T2 + 86_400_000 - 1}},
        {"verb": "get_edge", "body": {"namespace": ns, "edge_id": "acme"}},
        {"verb": "ewc_penalty", "body": {"namespace": ns, "param_id": "none", "params": [1.0]}},
    ]
    cli_before = kg_dispatch(kg_env, reads)
    assert all(o["ok"] for o in cli_before), cli_before
    assert [e["dst"] for e in cli_before[3]["data"]] == ["Acme"]
    assert cli_before[0]["data"]["algo"] == "fastgrnn"
    http_before = [post(http, r, "s3cret-key") for r in reads]
    assert [s for s, _ in http_before] == [200] * len(reads)
    assert [o for _, o in http_before] == cli_before
    status, refused = post(http, reads[0], None)
    assert status == 401 and refused == {"ok": False, "verb": None,
                                         "error": "authorization: missing or wrong API key"}
    assert post(http, reads[0], "wrong-key")[0] == 401

    stack = Stack(stack_settings)
    stack.stop_workers(progress=lambda _m: None)
    assert not any(p.running for p in stack.status() if p.name.startswith("worker"))
    stack.start_workers(progress=lambda _m: None)
    assert all(p.healthy for p in stack.status())

    assert kg_dispatch(kg_env, reads) == cli_before
    assert [post(http, r, "s3cret-key")[1] for r in reads] == cli_before
    after = kg_dispatch(kg_env, [pipeline[5], {"verb": "health", "body": {"namespace": ns}}])
    assert after[0]["ok"] and after[1]["data"]["updates"]["instant"] == 2


def test_attend_reads_its_subgraph_from_the_graph_as_of_t(stack_settings, kg_env) -> None:
    ns = f"attend-{time.time_ns()}"
    # "$ns": a name ArcadeDB once resolved as the parameter when matched from an UNWIND row
    emb = {"Acme": [0.1] * DIM, "Globex": [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "$ns": [-0.5] * DIM}
    setup = [{"verb": "init_attention", "body": {"namespace": ns, "dim": DIM, "relations": ["works_at", "knows"]}}]
    setup += [{"verb": "upsert_node", "body": {"namespace": ns, "name": n, "embedding": v}} for n, v in emb.items()]
    setup += [
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "acme", "src": "alice", "dst": "Acme",
                                         "relation": "works_at", "valid_at": T1, "created_at": T1}},
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "knows", "src": "alice", "dst": "$ns",
                                         "relation": "knows", "valid_at": T1, "created_at": T1}},
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "globex", "src": "alice", "dst": "Globex",
                                         "relation": "works_at", "valid_at": T2, "created_at": T2 + 10}},
    ]
    assert all(o["ok"] for o in kg_dispatch(kg_env, setup))
    q = [1.0, 0, 0, 0, 0, 0, 0, 0]
    out = kg_dispatch(kg_env, [
        {"verb": "attend", "body": {"namespace": ns, "query": q, "src": "alice", "t": T2 + 1}},
        {"verb": "attend", "body": {"namespace": ns, "query": q, "src": "alice", "t": T1 + 1}},
        {"verb": "attend", "body": {"namespace": ns, "query": q, "src": "alice", "t": T2 + 1, "known_at": T2}},
        {"verb": "attend", "body": {"namespace": ns, "query": q, "now_ms": T2 + 1, "subgraph": {
            "nodes": {"$ns": emb["$ns"], "Globex": emb["Globex"]},  # in name order, as read from the graph
            "edges": [{"src": "alice", "dst": "Globex", "relation": "works_at", "t_ms": T2},
                      {"src": "alice", "dst": "$ns", "relation": "knows", "t_ms": T1}]}}},
    ])
    assert all(o["ok"] for o in out), out
    now, then, believed, inline = (o["data"] for o in out)
    assert sorted(now["weights"]) == ["$ns", "Globex"] and now["source"] == "graph"
    assert sorted(then["weights"]) == ["$ns", "Acme"]
    assert sorted(believed["weights"]) == ["$ns", "Acme"]  # Globex was learned after T2
    for d in (now, then, believed):
        for h in range(8):
            assert abs(sum(w[h] for w in d["weights"].values()) - 1.0) < 1e-12
    assert inline["vector"] == now["vector"] and inline["weights"] == now["weights"]


def test_kg_serve_answers_the_openapi_document_of_every_verb(http) -> None:
    """What `kg serve`'s supervisor builds once and hands to its serving processes is the document."""
    from service.root import VERBS

    doc = json.loads(urllib.request.urlopen(http + "/openapi.json", timeout=10).read())
    assert doc["openapi"].startswith("3.1")
    assert {f"{v}_request" for v in VERBS} <= set(doc["components"]["schemas"])
    assert doc["paths"]["/v1/dispatch"]["post"]["security"]  # the key is required (KG_API_KEY is set)
