"""``kg serve --processes N``: the preloading supervisor replaces a killed serving process.

Real processes throughout: ``kg serve`` as a subprocess, its own redis-server and a Celery worker
(tests/workers/conftest.py), and the session's ArcadeDB for a graph verb (so that the Bolt driver,
imported by the supervisor, is used only in the forked processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workers._streams import trained_reads
from bench._procs import REPO, wait_for
from bench._procs import Serve, post
from kg.procs import pid_alive

T1 = 1_546_300_800_000


@pytest.fixture
def serve(tmp_path: Path):
    """``serve(env, n)`` starts ``kg serve --processes n``; anything left is killed at the end."""
    started: list[Serve] = []

    def start(env: dict[str, str], processes: int) -> Serve:
        s = Serve(env, processes, tmp_path / f"serve{len(started)}.log")
        started.append(s)
        return s.start()

    yield start
    for s in started:
        kids = s.children()
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)
        for pid in kids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_serving_process_is_replaced_and_answers_the_same(
        env, stack_settings, workers, learn_session, serve) -> None:
    ns = "prefork"
    workers("w1")
    reads, expected = trained_reads(learn_session.dispatch, ns, seed=5)

    graph_env = dict(env, KG_GRAPH_URI=stack_settings.graph_uri, KG_GRAPH_PASSWORD=stack_settings.graph_password,
                     KG_GRAPH_SERVER=stack_settings.graph_server)
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
    update = {"verb": "feedback", "body": {"namespace": ns, "embedding": reads[1]["body"]["embedding"], "model": "small",
                                           "payload": {"quality": 0.9}, "now_ms": T1, "event_id": "after-kill"}}
    assert post(server.port, update)["ok"]
    after = [learn_session.dispatch(r) for r in reads]
    assert after[1] != expected[1], "the feedback changed the adapter"
    assert [post(server.port, r) for r in reads] == after

    log = server.log.read_text()
    assert log.count("(killed by SIGKILL)") == 2, log

    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(30) == 0, server.log.read_text()[-3000:]
    assert not [pid for pid in replaced if pid_alive(pid)], "serving processes outlived the supervisor"


def test_sigterm_lets_a_request_in_flight_finish(env, redis_server, serve) -> None:
    """No worker runs, so an update waits its KG_WAIT_TIMEOUT_S for a result: SIGTERM meanwhile
    still gets it its answer (a timeout with a ticket), then the supervisor exits 0."""
    from concurrent.futures import ThreadPoolExecutor

    from workers.store_keys import StateKeys

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
    assert not [pid for pid in kids if pid_alive(pid)]


def test_serving_processes_stop_when_the_supervisor_is_killed(env, serve) -> None:
    server = serve(env, 1)
    kids = server.wait_ready()
    server.proc.kill()
    server.proc.wait(10)
    wait_for(lambda: not any(pid_alive(pid) for pid in kids), 30, "orphaned serving processes to exit")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_processes_must_be_at_least_one(value: str) -> None:
    out = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--processes", value], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"argument --processes: must be at least 1, not {value}" in out.stderr


def test_a_crash_loop_stops_the_supervisor() -> None:
    code = r"""
import os, sys
from service.prefork import CrashLoop, Supervisor
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


def test_children_reaped_together_all_leave_the_supervisor() -> None:
    """Several children that died before one reap: every one leaves ``children`` at once, so a
    crash loop found at the first of them does not make ``stop`` wait for the others (it waited
    15 s and then failed with ChildProcessError, issue 12)."""
    from service.prefork import Supervisor

    sup = Supervisor(1, lambda: 3)
    pids = [sup._spawn() for _ in range(3)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_is_zombie(pid) for pid in pids):
        time.sleep(0.01)
    reaped = sup._reap()
    assert sorted(pid for pid, _, _ in reaped) == sorted(pids)
    assert sup.children == {}
    sup.stop()  # nothing left to wait for: returns at once


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
