"""Local processes for the benchmarks and the worker tests: a redis-server as ``kg up`` runs it
(:func:`service.servers.redis_launch`: AOF, appendfsync everysec, noeviction) and ``celery worker``
processes, each in its own process group so that a ``kill -9`` takes the pool children too.

Scaffolding, not product: it lives beside the benchmarks, and ``tests/workers`` imports it from
here (``bench`` is a package of this repository; the product packages never import it).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import redis

from kg.procs import free_port, pid_alive
from service.servers import redis_launch

REPO = Path(__file__).resolve().parent.parent
VISIBILITY_S = 6  # short, so a killed worker's tasks come back quickly


def wait_for(pred, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def stop_process(proc: subprocess.Popen | None, timeout_s: float) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``timeout_s``."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

class RedisServer:
    """redis-server with AOF (appendfsync everysec), as ``kg up`` runs it."""

    def __init__(self, root: Path, appendfsync: str = "everysec") -> None:
        self.appendfsync = appendfsync
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        launch = redis_launch(self.dir, self.port, self.appendfsync)
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                launch.cmd, cwd=launch.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                return False

        wait_for(up, 20, "redis-server to answer")
        client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)

    def shutdown(self) -> None:
        """SHUTDOWN: fsyncs the AOF and exits."""
        client = self.client()
        try:
            client.shutdown(nosave=False)
        except redis.ConnectionError:
            pass
        self.proc.wait(timeout=20)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc, 10)


class Worker:
    """One ``celery worker`` process group, of the product's app or of ``app`` (a module that adds
    test or benchmark tasks to it)."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path, concurrency: int = 1,
                 loglevel: str = "INFO", app: str = "workers.app") -> None:
        self.env = env
        self.app = app
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.proc: subprocess.Popen | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def start(self, wait: bool = True) -> "Worker":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", self.app, "worker", "-l", self.loglevel,
                 "-c", str(self.concurrency), "-n", self.hostname, "-Q", "kg",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        client = redis.Redis.from_url(self.env["KG_REDIS_URL"], socket_timeout=2)
        key = f"kg:workers:{self.hostname}"

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                raw = client.get(key)
            except redis.RedisError:
                return False
            return raw is not None and json.loads(raw)["pid"] == self.proc.pid

        wait_for(ready, timeout, f"worker {self.name} to be ready", every=0.1)
        client.close()

    def kill9(self) -> None:
        """kill -9 the whole worker: main process and pool children."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM): running tasks finish, the rest is requeued."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (read from /proc: this kernel has no
    /proc/<pid>/task/*/children, and psutil is not a dependency)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                state, ppid = fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if state != "Z" and int(ppid) == pid:
            out.add(int(entry))
    return out


def post(port: int, request: dict, timeout: float = 60) -> dict:
    """One dispatch request on a new connection (no keep-alive: each may reach another process)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/dispatch", body=json.dumps(request).encode(),
                     headers={"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise AssertionError(f"HTTP {resp.status}: {body[:300]!r}")
        return json.loads(body)
    finally:
        conn.close()


class Serve:
    """``kg serve --processes N`` on a free port as a subprocess (output in ``log``)."""

    def __init__(self, env: dict[str, str], processes: int, log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.processes = processes
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Serve":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--processes", str(self.processes),
                 "--port", str(self.port)],
                env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def children(self) -> set[int]:
        return children(self.proc.pid)

    def replaced(self, before: set[int]) -> set[int] | None:
        """The serving processes once they differ from ``before`` and are N again."""
        kids = self.children()
        return kids if kids != before and len(kids) == self.processes else None

    def wait_ready(self, timeout: float = 60) -> set[int]:
        """Wait until it answers and runs all its serving processes; returns their pids."""
        def ready() -> set[int] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"kg serve exited: {self.log.read_text()[-3000:]}")
            kids = self.children()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/openapi.json")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                return None
            return kids if ok and len(kids) == self.processes else None

        return wait_for(ready, timeout, "kg serve to answer with all its processes", every=0.1)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (the supervisor stops its processes); SIGKILL for all if that hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        kids = self.children()
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in kids | self.children() | {self.proc.pid}:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            return self.proc.wait(10)


def worker_env(redis_url: str, home: Path, **extra: str) -> dict[str, str]:
    """An environment for workers on ``redis_url`` with test-sized limits (override with ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env.update({
        "KG_HOME": str(home),
        "KG_REDIS_URL": redis_url,
        "KG_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
        "KG_TASK_TIME_LIMIT_S": "3",
        "KG_TASK_SOFT_TIME_LIMIT_S": "2.5",
        "KG_DRAIN_BUDGET_S": "1",
        "KG_STATE_HISTORY_EVERY_MS": "0",  # every replaced version kept: rollback tests step by one
        "KG_WAIT_TIMEOUT_S": "30",
        "PYTHONPATH": str(REPO),
        "OPENBLAS_NUM_THREADS": "1",
    })
    env.update(extra)
    return env


@contextmanager
def scratch_service(tag: str) -> Iterator[dict[str, str]]:
    """A throw-away redis-server (as ``kg up`` runs it) and one worker, for benchmarks.

    Yields the environment that points a ``Session`` at them; both stop on exit.
    """
    with tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        env = worker_env(server.url, Path(tmp) / "home", KG_STATE_HISTORY_EVERY_MS="1000")
        worker = Worker(env, tag, server.dir, loglevel="WARNING").start()
        try:
            yield env
        finally:
            worker.stop()
            server.stop()
