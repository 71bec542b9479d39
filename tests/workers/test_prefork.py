"""``kg serve --processes N``: the preloading supervisor replaces a killed serving process.

Real processes throughout: ``kg serve`` as a subprocess, its own redis-server and a Celery worker
(tests/workers/conftest.py), and the session's ArcadeDB for a graph verb (so that the Bolt driver,
imported by the supervisor, is used only in the forked processes).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _streams import init_requests, probes, update_requests
from conftest import REPO, free_port, wait_for

T1 = 1_546_300_800_000


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (the kernel here has no /proc/<pid>/task/*/children)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                out.add(int(entry))
    return out


def post(port: int, request: dict) -> dict:
    """One request on a new connection (no keep-alive across a kill)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/dispatch", body=json.dumps(request).encode(),
                     headers={"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())
    finally:
        conn.close()


class Serve:
    """``kg serve --processes N`` as a subprocess; stderr and stdout in ``log``."""

    def __init__(self, env: dict[str, str], processes: int, log: Path) -> None:
        self.port = free_port()
        self.processes = processes
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kg.cli", "serve", "--processes", str(processes), "--port", str(self.port)],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def children(self) -> set[int]:
        return children(self.proc.pid)

    def replaced(self, before: set[int]) -> set[int] | None:
        """The serving processes once they differ from ``before`` and are N again."""
        kids = self.children()
        return kids if kids != before and len(kids) == self.processes else None

    def wait_ready(self) -> set[int]:
        def ready() -> set[int] | None:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            kids = self.children()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/openapi.json")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                return None
            return kids if ok and len(kids) == self.processes else None

        return wait_for(ready, 60, "kg serve to answer with all its processes", every=0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def serve(tmp_path: Path):
    started: list[Serve] = []

    def start(env: dict[str, str], processes: int) -> Serve:
        s = Serve(env, processes, tmp_path / f"serve{len(started)}.log")
        started.append(s)
        return s

    yield start
    for s in started:
        kids = s.children()
        s.stop()
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_serving_process_is_replaced_and_answers_the_same(
        env, stack_settings, workers, learn_session, serve) -> None:
    ns = "prefork"
    workers("w1")
    for req in init_requests(ns) + update_requests(ns, 20, seed=5):
        out = learn_session.dispatch(req)
        assert out["ok"], out
    x = probes(seed=6, n=1)[0]
    reads = [{"verb": "route", "body": {"namespace": ns, "embedding": x, "estimated_tokens": 5000}},
             {"verb": "apply_adapter", "body": {"namespace": ns, "embedding": x}},
             {"verb": "ewc_penalty", "body": {"namespace": ns, "param_id": "layer0", "params": x[:8]}}]
    expected = [learn_session.dispatch(r) for r in reads]
    assert all(a["ok"] for a in expected), expected

    graph_env = dict(env, KG_GRAPH_URI=stack_settings.graph_uri, KG_GRAPH_PASSWORD=stack_settings.graph_password)
    server = serve(graph_env, 2)
    first = server.wait_ready()
    edge = {"verb": "insert_edge", "body": {"namespace": f"{ns}-{os.getpid()}-{server.port}", "id": "e1",
                                            "src": "alice", "dst": "Acme", "relation": "works_at",
                                            "valid_at": T1, "created_at": T1}}
    assert post(server.port, edge)["ok"]
    graph_read = {"verb": "query_at", "body": {"namespace": edge["body"]["namespace"], "src": "alice", "t": T1 + 1}}
    graph_answer = post(server.port, graph_read)
    assert graph_answer["ok"] and [e["dst"] for e in graph_answer["data"]] == ["Acme"]
    assert [post(server.port, r) for r in reads] == expected

    # kill -9 each original serving process in turn: afterwards only replacements can answer
    replaced = set(first)
    for victim in sorted(first):
        os.kill(victim, signal.SIGKILL)
        now = wait_for(lambda: server.replaced(replaced), 30, f"a replacement of {victim}")
        assert victim not in now and server.proc.poll() is None
        replaced = now
        for _ in range(4):  # new connections, spread over both processes
            assert [post(server.port, r) for r in reads] == expected, "answers from restored state differ"
            assert post(server.port, graph_read) == graph_answer
    assert not replaced & first

    # a replacement also takes updates (publishes the drain; the worker applies it)
    update = {"verb": "feedback", "body": {"namespace": ns, "embedding": x, "model": "small",
                                           "payload": {"quality": 0.9}, "now_ms": T1, "event_id": "after-kill"}}
    assert post(server.port, update)["ok"]
    after = [learn_session.dispatch(r) for r in reads]
    assert after[1] != expected[1], "the feedback changed the adapter"
    assert [post(server.port, r) for r in reads] == after

    log = server.log.read_text()
    assert log.count("(killed by SIGKILL)") == 2, log

    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(30) == 0, server.log.read_text()[-3000:]
    assert not [pid for pid in replaced if alive(pid)], "serving processes outlived the supervisor"


def test_sigterm_lets_a_request_in_flight_finish(env, redis_server, serve) -> None:
    """No worker runs, so an update waits its KG_WAIT_TIMEOUT_S for a result: SIGTERM meanwhile
    still gets it its answer (a timeout with a ticket), then the supervisor exits 0."""
    from concurrent.futures import ThreadPoolExecutor

    from workers.weight_store import StateKeys

    server = serve(dict(env, KG_WAIT_TIMEOUT_S="3"), 1)
    kids = server.wait_ready()
    init = {"verb": "init_instant", "body": {"namespace": "inflight", "targets": ["a", "b"], "in_dim": 4}}
    queued = StateKeys.of("inflight", "instant").pending
    client = redis_server.client()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, server.port, init)
        wait_for(lambda: client.exists(queued), 30, "the update to be queued (the request is in flight)")
        os.kill(server.proc.pid, signal.SIGTERM)
        out = answer.result(60)
    assert out["ok"] is False and "ticket" in out["error"], out
    assert server.proc.wait(30) == 0, server.log.read_text()[-3000:]
    assert not [pid for pid in kids if alive(pid)]


def test_serving_processes_stop_when_the_supervisor_is_killed(env, serve) -> None:
    server = serve(env, 1)
    kids = server.wait_ready()
    server.proc.kill()
    server.proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in kids), 30, "orphaned serving processes to exit")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_processes_must_be_at_least_one(value: str) -> None:
    out = subprocess.run([sys.executable, "-m", "kg.cli", "serve", "--processes", value], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"argument --processes: must be at least 1, not {value}" in out.stderr


def test_a_crash_loop_stops_the_supervisor() -> None:
    code = r"""
import os, sys
from workers.prefork import CrashLoop, Supervisor
sup = Supervisor(2, lambda: 3)
try:
    sup.run()
except CrashLoop as exc:
    try:
        os.waitpid(-1, os.WNOHANG)
        left = "a child left"
    except ChildProcessError:
        left = "no child left"
    print(f"{exc} | {left}")
    sys.exit(1)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 1, out.stderr
    assert "5 serving processes in a row died within 1 s of starting" in out.stdout, out.stdout + out.stderr
    assert ": exit status 3); not starting another" in out.stdout and out.stdout.rstrip().endswith("| no child left")
    assert out.stderr.count("died (exit status 3)") == 4, out.stderr  # the 5th was not replaced
