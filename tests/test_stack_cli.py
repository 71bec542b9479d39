"""`kg up` / `kg status` / `kg down` on a fresh KG_HOME, and external servers via settings."""

import json
import os
import subprocess
import sys

from kg.stack import pid_alive


def kg(env, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "kg.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def clean_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env["KG_HOME"] = str(home)
    return env


def test_up_twice_status_down(tmp_path):
    env = clean_env(tmp_path / "home")
    try:
        first = kg(env, "up")
        assert first.returncode == 0, first.stderr
        assert "starting ArcadeDB" in first.stderr
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
        assert {"arcadedb", "redis"} <= set(pids)
    finally:
        down = kg(env, "down")
    assert down.returncode == 0
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    after = kg(env, "status")
    assert after.returncode == 1 and "stopped" in after.stdout


def test_external_servers_start_nothing(tmp_path, stack_settings, ns):
    env = clean_env(tmp_path / "elsewhere")
    env.update(KG_GRAPH_URI=stack_settings.graph_uri, KG_GRAPH_PASSWORD=stack_settings.graph_password,
               KG_REDIS_URL=stack_settings.redis_url)
    try:
        up = kg(env, "up")
        assert up.returncode == 0, up.stderr
        assert "starting ArcadeDB" not in up.stderr and "starting redis" not in up.stderr
        servers = {p.stem for p in (tmp_path / "elsewhere").glob("run/*.pid")} & {"arcadedb", "redis"}
        assert not servers
        assert "external" in kg(env, "status").stdout
        request = json.dumps({"verb": "insert_edge", "body": {"namespace": ns, "id": "x", "src": "a", "dst": "b",
                                                              "valid_at": 1, "created_at": 2}})
        out = subprocess.run([sys.executable, "-m", "kg.cli", "dispatch"], input=request + "\n", env=env,
                             capture_output=True, text=True, timeout=120)
        assert json.loads(out.stdout)["ok"] is True
    finally:
        kg(env, "down")  # stops the service's own processes (workers), never the external servers


def test_down_graph_gives_a_clear_error(tmp_path):
    env = clean_env(tmp_path / "nothing")
    env.update(KG_GRAPH_URI="bolt://127.0.0.1:1", KG_GRAPH_PASSWORD="x", KG_REDIS_URL="redis://127.0.0.1:1/0")
    request = json.dumps({"verb": "query_at", "body": {"src": "a", "t": 1}})
    out = subprocess.run([sys.executable, "-m", "kg.cli", "dispatch"], input=request + "\n", env=env,
                         capture_output=True, text=True, timeout=120)
    answer = json.loads(out.stdout)
    assert answer["ok"] is False and "unavailable" in answer["error"]
