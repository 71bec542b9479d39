"""`kg up` / `kg status` / `kg down` on a fresh KG_HOME, and external servers via settings."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kg.config import Settings
from kg.procs import pid_alive
from tests.service._stack import clean_env, kg, wait_gone

LABELS = {"neo4j": "starting Neo4j 5.26.", "arcadedb": "starting ArcadeDB"}


def dispatch(env, *requests):
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    out = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=lines, env=env,
                         capture_output=True, text=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines()]


def private_tree(root: Path) -> list[str]:
    """Files or folders under ``root`` that another user could read."""
    return [str(p) for p in [root, *root.rglob("*")] if p.stat().st_mode & 0o077]


def test_up_twice_status_down(tmp_path):
    env = clean_env(tmp_path / "home")
    server = Settings.from_env(env).graph_server
    try:
        first = kg(env, "up")
        assert first.returncode == 0, first.stderr
        assert LABELS[server] in first.stderr
        record = json.loads((tmp_path / "home" / "stack.json").read_text())
        assert record["graph_uri"].startswith("bolt://127.0.0.1:")
        assert oct((tmp_path / "home" / "stack.json").stat().st_mode)[-3:] == "600"
        second = kg(env, "up")
        assert second.returncode == 0 and "already running" in second.stderr
        assert "starting" not in second.stderr
        status = kg(env, "status")
        assert status.returncode == 0
        lines = {line.split()[0]: line for line in status.stdout.splitlines()}
        assert "healthy" in lines["graph"] and "healthy" in lines["redis"]
        assert "appendonly yes" in lines["redis"]
        pids = {p.stem: int(p.read_text()) for p in (tmp_path / "home" / "run").glob("*.pid")}
        assert {server, "redis"} <= set(pids)
        record = json.loads((tmp_path / "home" / "stack.json").read_text())
        cmdline = Path(f"/proc/{pids[server]}/cmdline").read_bytes()
        assert record["graph_password"].encode() not in cmdline  # `ps` shows command lines to everyone
        assert not private_tree(tmp_path / "home")
        import redis

        assert record["redis_password"].encode() not in Path(f"/proc/{pids['redis']}/cmdline").read_bytes()
        with pytest.raises(redis.AuthenticationError):  # no password, no access
            redis.Redis(port=int(record["redis_url"].rsplit(":", 1)[1].split("/")[0])).ping()
        assert redis.Redis.from_url(record["redis_url"]).ping()
    finally:
        down = kg(env, "down")
    assert down.returncode == 0
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    after = kg(env, "status")
    assert after.returncode == 1 and "stopped" in after.stdout


def test_external_servers_start_nothing(tmp_path, stack_settings, ns):
    env = clean_env(tmp_path / "elsewhere")
    env.update(KG_GRAPH_URI=stack_settings.graph_uri, KG_GRAPH_PASSWORD=stack_settings.graph_password,
               KG_GRAPH_SERVER=stack_settings.graph_server,
               KG_REDIS_URL=stack_settings.redis_url)
    try:
        up = kg(env, "up")
        assert up.returncode == 0, up.stderr
        assert not [line for line in up.stderr.splitlines()
                    if line.startswith(("starting Neo4j", "starting ArcadeDB", "starting redis"))]
        servers = {p.stem for p in (tmp_path / "elsewhere").glob("run/*.pid")} & {"neo4j", "arcadedb", "redis"}
        assert not servers
        assert "external" in kg(env, "status").stdout
        request = json.dumps({"verb": "insert_edge", "body": {"namespace": ns, "id": "x", "src": "a", "dst": "b",
                                                              "valid_at": 1, "created_at": 2}})
        out = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=request + "\n", env=env,
                             capture_output=True, text=True, timeout=120)
        assert json.loads(out.stdout)["ok"] is True
    finally:
        kg(env, "down")  # stops the service's own processes (workers), never the external servers


def test_down_graph_gives_a_clear_error(tmp_path):
    env = clean_env(tmp_path / "nothing")
    env.update(KG_GRAPH_URI="bolt://127.0.0.1:1", KG_GRAPH_PASSWORD="x", KG_REDIS_URL="redis://127.0.0.1:1/0")
    request = json.dumps({"verb": "query_at", "body": {"src": "a", "t": 1}})
    out = subprocess.run([sys.executable, "-m", "service.cli", "dispatch"], input=request + "\n", env=env,
                         capture_output=True, text=True, timeout=120)
    answer = json.loads(out.stdout)
    assert answer["ok"] is False and "unavailable" in answer["error"]


def test_up_after_kill9_of_the_graph_server_recovers_the_store(tmp_path):
    """`kill -9` of the graph server, then `kg up`: committed facts are there, on the same port."""
    env = clean_env(tmp_path / "home")
    env.update(KG_UP_WORKERS="0", KG_UP_BEAT="false")
    server = Settings.from_env(env).graph_server
    edges = [{"verb": "insert_edge", "body": {"namespace": "crash", "id": f"e{i}", "src": "alice",
                                              "dst": f"d{i}", "valid_at": i, "created_at": 100}}
             for i in range(50)]
    query = {"verb": "query_at", "body": {"namespace": "crash", "src": "alice", "t": 1000}}
    try:
        assert kg(env, "up").returncode == 0
        assert all(answer["ok"] for answer in dispatch(env, *edges))
        uri = json.loads((tmp_path / "home" / "stack.json").read_text())["graph_uri"]
        pid = int((tmp_path / "home" / "run" / f"{server}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        wait_gone(pid)
        again = kg(env, "up")
        assert again.returncode == 0, again.stderr
        assert LABELS[server] in again.stderr
        assert json.loads((tmp_path / "home" / "stack.json").read_text())["graph_uri"] == uri
        [answer] = dispatch(env, query)
        assert answer["ok"], answer
        assert sorted(e["id"] for e in answer["data"]) == sorted(f"e{i}" for i in range(50))
    finally:
        assert kg(env, "down").returncode == 0


def test_external_parts_come_from_the_settings_env_not_this_process(tmp_path, stack_settings):
    """A Stack built in-process from an env naming the servers starts none of them (the
    benchmarks and tests build such stacks; this process's own environment names none)."""
    from service.stack import Stack

    env = clean_env(tmp_path / "inproc")
    env.update(KG_GRAPH_URI=stack_settings.graph_uri, KG_GRAPH_PASSWORD=stack_settings.graph_password,
               KG_GRAPH_SERVER=stack_settings.graph_server, KG_REDIS_URL=stack_settings.redis_url,
               KG_UP_WORKERS="0", KG_UP_BEAT="false")
    assert "KG_REDIS_URL" not in os.environ
    said: list[str] = []
    Stack(Settings.from_env(env)).up(progress=said.append)
    assert not [line for line in said if line.startswith("starting")], said
    assert not list((tmp_path / "inproc").glob("run/*.pid"))


def test_kill9_of_redis_then_kg_up_learning_goes_on(tmp_path):
    """Issue 12: after redis-server died, `kg up` started a new one on a new port while the
    workers kept retrying the old one, and learning stopped silently. Now it comes back on its
    recorded port, the running worker reconnects, and every acknowledged update is applied once."""
    env = clean_env(tmp_path / "home")
    env.update(KG_UP_BEAT="false")
    ns = "redis-restart"
    feedback = [{"verb": "feedback", "body": {"namespace": ns, "embedding": [1.0, 0.5, -0.5, 0.25],
                                              "model": "a", "payload": {"quality": 0.9}, "now_ms": 1000 + i}}
                for i in range(10)]
    try:
        assert kg(env, "up").returncode == 0
        answers = dispatch(env, {"verb": "init_instant", "body": {"namespace": ns, "targets": ["a", "b"],
                                                                  "in_dim": 4}}, *feedback[:5])
        assert all(a["ok"] for a in answers), answers
        record = json.loads((tmp_path / "home" / "stack.json").read_text())
        redis_pid = int((tmp_path / "home" / "run" / "redis.pid").read_text())
        os.killpg(redis_pid, signal.SIGKILL)
        wait_gone(redis_pid)
        again = kg(env, "up")
        assert again.returncode == 0, again.stderr
        assert "starting redis-server" in again.stderr
        assert json.loads((tmp_path / "home" / "stack.json").read_text())["redis_url"] == record["redis_url"]
        answers = dispatch(env, *feedback[5:], {"verb": "health", "body": {"namespace": ns}})
        assert all(a["ok"] for a in answers), answers
        assert answers[-1]["data"]["cores"]["instant"]["updates"] == 10, answers[-1]["data"]
    finally:
        assert kg(env, "down").returncode == 0
