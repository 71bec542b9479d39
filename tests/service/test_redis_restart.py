"""Issue 12, item 11: redis-server killed (`kill -9`) under a running stack, then `kg up`.

One stack of its own (KG_HOME under a temporary folder), so that killing its Redis disturbs no
other test. Health must come from a live check, a long-running client must reconnect, and a
stream of updates crossing the kill must lose and double nothing.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from kg.config import Settings
from tests.service._stack import clean_env, kg, wait_gone
from workers.heartbeat import PREFIX
from workers.service import Learning

NS = "redis-restart"
INIT = {"verb": "init_instant", "body": {"namespace": NS, "targets": ["a", "b"], "in_dim": 4}}
TRANSIENT = ("redis:", "workers:")  # Redis unreachable or loading; the worker has not answered yet


def feedback(i: int, event_id: str | None = None) -> dict:
    body = {"namespace": NS, "embedding": [1.0, 0.5, -0.5, 0.25], "model": "ab"[i % 2],
            "payload": {"quality": 0.9}, "now_ms": 1000 + i}
    if event_id is not None:
        body["event_id"] = event_id
    return {"verb": "feedback", "body": body}


class Client:
    """A long-running `kg dispatch` process: one JSON line in, one answer out."""

    def __init__(self, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "dispatch"], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"kg dispatch exited ({self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("redis-restart") / "home"
    env = clean_env(home)
    # `always`: the durability the stream test checks holds without exception (see its docstring)
    env.update(KG_REDIS_APPENDFSYNC="always")
    up = kg(env, "up")
    assert up.returncode == 0, up.stderr
    try:
        yield env
    finally:
        assert kg(env, "down").returncode == 0


def pid_of(env: dict, name: str) -> int:
    return int((Settings.from_env(env).home / "run" / f"{name}.pid").read_text())


def kill_redis_and_up(env: dict) -> None:
    """`kill -9` of redis-server, then `kg up` (with the environment given)."""
    pid = pid_of(env, "redis")
    os.killpg(pid, signal.SIGKILL)
    wait_gone(pid)
    again = kg(env, "up")
    assert again.returncode == 0, again.stderr
    assert "starting redis-server" in again.stderr


def test_health_counts_only_live_heartbeats_after_a_redis_restart(stack):
    """Issue 12: after Redis came back, worker and beat were "healthy" on the strength of
    heartbeat keys the AOF brought back. Here they are stopped (SIGSTOP: their pids live on, as
    did those of the workers stuck on the old port), Redis is killed and restarted alone, and the
    keys are back as an AOF replay brings them: nothing may count as live until the processes
    beat again."""
    client = Client(stack)
    names = ("worker-1", "beat")
    pids = [pid_of(stack, name) for name in names]
    try:
        before = client.ask({"verb": "health", "body": {"namespace": NS}})
        assert sorted(w["role"] for w in before["data"]["workers"]) == ["beat", "worker"], before
        settings = Settings.from_env(stack)
        with redis.Redis.from_url(settings.redis_url) as r:
            beats = {key: r.get(key) for key in r.scan_iter(match=PREFIX + "*")}
        assert len(beats) == 2
        for pid in pids:
            os.killpg(pid, signal.SIGSTOP)
        kill_redis_and_up(dict(stack, KG_UP_WORKERS="0", KG_UP_BEAT="false"))  # Redis only
        with redis.Redis.from_url(settings.redis_url) as r:
            for key, value in beats.items():
                r.set(key, value, px=12_000, nx=True)  # as the AOF replays a key not yet expired

        health = client.ask({"verb": "health", "body": {"namespace": NS}})
        assert health["ok"], health
        assert health["data"]["workers"] == [], health["data"]
        status = kg(stack, "status")
        assert status.returncode == 1, status.stdout
        lines = {line.split()[0]: line for line in status.stdout.splitlines()}
        for name in names:
            assert "running, not answering" in lines[name], status.stdout
    finally:
        for pid in pids:
            os.killpg(pid, signal.SIGCONT)
    try:
        up = kg(stack, "up")  # the same processes beat again, to the new instance
        assert up.returncode == 0, up.stderr
        assert "already running" in up.stderr
        health = client.ask({"verb": "health", "body": {"namespace": NS}})
        assert sorted((w["role"], w["pid"]) for w in health["data"]["workers"]) == \
            sorted([("beat", pids[1]), ("worker", pids[0])]), health["data"]
    finally:
        client.close()


def test_a_kg_dispatch_client_reconnects_after_redis_is_back(stack):
    """Issue 12: a long-running `kg dispatch` kept answering "redis: unreachable" after Redis was
    back. The same process answers the first line after `kg up`."""
    client = Client(stack)
    try:
        assert client.ask(INIT)["ok"]
        assert client.ask(feedback(0))["ok"]
        pid = pid_of(stack, "redis")
        os.killpg(pid, signal.SIGKILL)
        wait_gone(pid)
        down = client.ask(feedback(1))
        assert not down["ok"] and down["error"].startswith("redis: unreachable"), down
        again = kg(stack, "up")
        assert again.returncode == 0, again.stderr
        after = client.ask(feedback(2))
        assert after["ok"], after
        assert after["data"]["updates"] == 2, after
        health = client.ask({"verb": "health", "body": {"namespace": NS}})
        assert health["data"]["cores"]["instant"]["updates"] == 2, health["data"]
    finally:
        client.close()


def test_kill9_of_redis_mid_stream_loses_and_doubles_nothing(stack):
    """A stream of `feedback` events with ids, from one long-running `kg dispatch`; redis-server
    is killed (`kill -9`) while the stream runs, and `kg up` brings it back. A request that fails
    (Redis unreachable or loading, or no result within the wait) is sent again with the same
    event id, as a client that survives a restart does.

    The guarantee checked: with ``appendfsync always`` Redis writes (and fsyncs) the AOF before
    it replies, so an update answered ok survives a `kill -9` of the server; and a retried event
    id takes effect once. (With ``everysec``, `kg up`'s default, the write before the reply is
    skipped while the previous second's fsync still runs, for up to 2 s, and a `kill -9` then
    loses what was acknowledged meanwhile: rare, but not never, so this test does not rely on it.)
    """
    with redis.Redis.from_url(Settings.from_env(stack).redis_url) as r:
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
    n, kill_after = 80, 20
    client = Client(stack)
    acked: dict[str, dict] = {}
    retried = 0
    killed, restarted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            killed.wait()
            kill_redis_and_up(stack)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            restarted.set()

    killer = threading.Thread(target=restart, daemon=True)
    killer.start()
    try:
        assert client.ask(INIT)["ok"]
        for i in range(n):
            event_id = f"stream-{i}"
            deadline = time.monotonic() + 180
            while True:
                answer = client.ask(feedback(i, event_id))
                if answer["ok"]:
                    acked[event_id] = answer["data"]
                    break
                assert answer["error"].startswith(TRANSIENT), answer
                assert time.monotonic() < deadline, answer
                retried += 1
                time.sleep(0.2)
            if len(acked) == kill_after:
                killed.set()  # the next requests run into the kill
        killer.join(timeout=300)
        assert restarted.is_set() and not errors, errors
        health = client.ask({"verb": "health", "body": {"namespace": NS}})
    finally:
        killed.set()
        client.close()

    learning = Learning(Settings.from_env(stack))
    try:
        results = learning.store.results(NS, "instant", list(acked))
    finally:
        learning.close()
    applied = {eid for eid, result in zip(acked, results) if result and result.get("ok")}
    updates = health["data"]["cores"]["instant"]["updates"]
    lost = set(acked) - applied
    doubled = updates - len(applied)
    assert retried > 0  # the kill did land inside the stream
    assert (len(acked), lost, doubled) == (n, set(), 0), (retried, updates)
    assert updates == n
    # every application moved the version once: the acknowledged versions are distinct
    assert len({data["version"] for data in acked.values()}) == n


def test_redis_back_on_another_port_restarts_the_workers(stack):
    """Issue 12: when `kg up` could not have the recorded port back, it started Redis on a new
    one and left the workers retrying the old one. Now it restarts them with it."""
    before = json.loads((Settings.from_env(stack).home / "stack.json").read_text())["redis_url"]
    old_port = int(before.rsplit(":", 1)[1].split("/")[0])
    workers = [pid_of(stack, name) for name in ("worker-1", "beat")]
    pid = pid_of(stack, "redis")
    os.killpg(pid, signal.SIGKILL)
    wait_gone(pid)
    with socket.socket() as squatter:  # some other server took the port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the TIME_WAITs
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        again = kg(stack, "up")
    assert again.returncode == 0, again.stderr
    assert "stopping worker-1" in again.stderr and "starting worker-1" in again.stderr, again.stderr
    assert Settings.from_env(stack).redis_url != before
    assert [pid_of(stack, name) for name in ("worker-1", "beat")] != workers
    client = Client(stack)  # a new client reads the new address
    try:
        assert client.ask(INIT)["ok"]
        answer = client.ask(feedback(0))
        assert answer["ok"] and answer["data"]["updates"] == 1, answer
        health = client.ask({"verb": "health", "body": {"namespace": NS}})
        assert sorted(w["role"] for w in health["data"]["workers"]) == ["beat", "worker"], health["data"]
    finally:
        client.close()
