"""The local stack: a graph server (Neo4j by default, or ArcadeDB; Bolt on 127.0.0.1, see
``service.servers``), a redis-server with AOF, and the
Celery workers (``KG_UP_WORKERS``, default one) and beat (``KG_UP_BEAT``, default on).

``up`` starts what is not running yet and waits until it answers; ``down`` stops
what ``up`` started, by the pids it recorded; ``status`` reports each part.
Everything lives under one state directory (``Settings.home``): data, logs,
pids and ``stack.json`` with the ports and the generated graph password.
A part whose location is given by the environment (``KG_GRAPH_URI``,
``KG_REDIS_URL``) is external: ``up`` starts nothing for it.  Workers and beat
start after Redis answers and count as healthy while their heartbeat
(``kg:workers:<name>``) is live: written to the Redis running now, within a few seconds by its
clock (``workers.heartbeat``); ``down`` stops them first, with SIGTERM (a
warm shutdown: running tasks finish, the rest go back to the queue).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kg.config import GRAPH_SERVERS, Settings
from kg.errors import StackError
from kg.procs import bindable, free_port, pid_alive
from kg.redact import redact_url
from workers.heartbeat import node_name
from service.servers import Launch, arcadedb_launch, neo4j_launch, redis_launch, write_private

START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class PartStatus:
    name: str
    managed: bool  # started by ``kg up`` (vs. external)
    pid: int | None
    running: bool
    healthy: bool
    address: str
    detail: str = ""

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running, not answering" if self.running else "stopped")
        owner = f"pid {self.pid}" if self.managed and self.pid else ("external" if not self.managed else "-")
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name:<9} {state:<24} {owner:<12} {self.address}{extra}"


class Stack:
    """Start, check and stop the local processes of one ``KG_HOME``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home
        self.stack_file = self.home / "stack.json"

    # -- recorded state -------------------------------------------------
    def _record(self) -> dict:
        if self.stack_file.exists():
            return json.loads(self.stack_file.read_text())
        return {}

    def _save(self, record: dict) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.stack_file.with_suffix(".tmp")
        write_private(tmp, json.dumps(record, indent=2))
        tmp.replace(self.stack_file)

    def _pid(self, name: str) -> int | None:
        path = self.home / "run" / f"{name}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_pid(self, name: str, pid: int) -> None:
        (self.home / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.home / "run" / f"{name}.pid", str(pid))

    @property
    def graph_external(self) -> bool:
        return self.settings.graph_external

    @property
    def redis_external(self) -> bool:
        return self.settings.redis_external

    # -- up ----------------------------------------------------------------
    def up(self, progress=print) -> dict:
        """Start what is missing and wait until every part answers; harmless twice."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = self._record()
        if not self.graph_external:
            self._up_graph(record, progress)
        if not self.redis_external:
            if not pid_alive(self._pid("redis")):
                port = _reuse_port(record.get("redis_url"))
                password = record.setdefault("redis_password", secrets.token_urlsafe(18))
                url = f"redis://:{password}@127.0.0.1:{port}/0"
                if record.get("redis_url") not in (None, url):  # its port was taken meanwhile:
                    self.stop_workers(progress)  # running workers would keep retrying the old one
                record["redis_url"] = url
                self._save(record)
                progress(f"starting redis-server (127.0.0.1:{port}, appendonly yes, password)")
                self._start_redis(port, password)
            else:
                progress("redis-server already running")
        self._save(record)
        settings = _with_record(self.settings, record)
        self._wait_healthy(settings, self._core_parts)
        self._start_workers(progress)
        self._wait_healthy(settings)
        return record

    def _up_graph(self, record: dict, progress) -> None:
        """Start the configured graph server unless it runs; a KG_HOME holds one kind only."""
        server = self.settings.graph_server
        other = next((s for s in GRAPH_SERVERS if s != server and pid_alive(self._pid(s))), None)
        if other:
            raise StackError(f"KG_GRAPH_SERVER: {server} asked, but this KG_HOME runs {other}; "
                             "`kg down` first (the data of each server is kept apart)")
        if pid_alive(self._pid(server)):
            progress(f"{server} already running")
            return
        record.setdefault("graph_password", secrets.token_urlsafe(18))
        port = _reuse_port(record.get("graph_uri") if record.get("graph_server", "arcadedb") == server else None)
        record.update(graph_server=server, graph_uri=f"bolt://127.0.0.1:{port}")
        root = self.home / server
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if server == "neo4j":
            launch = neo4j_launch(self.settings, root, port, record["graph_password"])
        else:
            http_port = free_port()
            record["graph_http_port"] = http_port
            launch = arcadedb_launch(self.settings, root, port, http_port, record["graph_password"])
        self._save(record)
        progress(f"starting {launch.label} (Bolt 127.0.0.1:{port})")
        log_offset = self._log_size(launch.name)
        self._spawn(launch.name, launch.cmd, cwd=launch.cwd, env=launch.env)
        if launch.ready_line:
            self._wait_ready_line(launch, log_offset)

    def _log_size(self, name: str) -> int:
        path = self.home / "logs" / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def _wait_ready_line(self, launch: Launch, offset: int) -> None:
        """Wait for the line the launcher prints once the database answers (or for its death)."""
        log = self.home / "logs" / f"{launch.name}.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
            if launch.ready_line in text:
                return
            if not pid_alive(self._pid(launch.name)):
                tail = "\n".join(text.strip().splitlines()[-5:])
                raise StackError(f"{launch.label} exited during start-up; see {log}:\n{tail}")
            time.sleep(0.2)
        raise StackError(f"{launch.label} printed no ready line within {START_TIMEOUT_S:.0f} s; see {log}")

    # -- workers and beat ----------------------------------------------------------------
    def _worker_names(self) -> list[str]:
        ws = self.settings.workers
        names = [f"worker-{i}" for i in range(1, ws.up_workers + 1)]
        return names + (["beat"] if ws.up_beat else [])

    def celery_hostname(self, name: str) -> str:
        """Node name, unique per state directory (two stacks may share a Redis or a host)."""
        return node_name(name, self.home)

    def _start_workers(self, progress) -> None:
        # the workers import the same code as this process (not whatever `import workers` finds
        # from their working directory): a worker reading another version's queue entries fails
        code_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (code_root, os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, KG_HOME=str(self.home), PYTHONPATH=path)
        # one BLAS thread per prefork process: the cores' products are small, and spinning BLAS
        # threads take the CPU that Redis and the other processes need (bench/learn_speed.py)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        base = [sys.executable, "-m", "celery", "-A", "workers.app"]
        for name in self._worker_names():
            if pid_alive(self._pid(name)):
                progress(f"{name} already running")
                continue
            if name == "beat":
                cmd = base + ["beat", "-l", "INFO"]
            else:
                cmd = base + ["worker", "-l", "INFO", "-c", str(self.settings.workers.concurrency),
                              "-n", self.celery_hostname(name), "-Q", "kg",
                              "--without-gossip", "--without-mingle", "--without-heartbeat"]
            progress(f"starting {name} (celery {cmd[5]})")
            self._spawn(name, cmd, cwd=self.home, env=env)

    def _worker_status(self, settings: Settings) -> list[PartStatus]:
        import redis

        names = self._worker_names()
        if not names:
            return []
        from workers.heartbeat import alive

        beats: dict[str, dict] = {}
        try:
            client = redis.Redis.from_url(settings.redis_url, socket_timeout=2) if settings.redis_url else None
            if client is not None:
                live = {beat["name"]: beat for beat in alive(client)}  # not a key the AOF brought back
                beats = {name: live[node] for name in names if (node := self.celery_hostname(name)) in live}
                client.close()
        except redis.RedisError:
            pass
        parts = []
        for name in names:
            pid = self._pid(name)
            running = pid_alive(pid)
            seen = beats.get(name)
            healthy = running and seen is not None and seen.get("pid") == pid
            detail = "heartbeat" if healthy else ("no heartbeat" if running else "")
            parts.append(PartStatus(name, True, pid, running, healthy, self.celery_hostname(name), detail))
        return parts

    def _start_redis(self, port: int, password: str) -> None:
        """redis-server with AOF and a password (from a private config file, not the command
        line): no other local user can rewrite weight blobs or queue tasks."""
        launch = redis_launch(self.home / "redis", port,
                              self.settings.redis_appendfsync, password)
        self._spawn(launch.name, launch.cmd, cwd=launch.cwd)

    def _spawn(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        logs = self.home / "logs"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(  # umask: every file a server writes is private
                cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, umask=0o077,
                stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            )
        self._write_pid(name, proc.pid)

    def _core_parts(self, settings: Settings) -> list[PartStatus]:
        return [self._graph_status(settings), self._redis_status(settings)]

    def _wait_healthy(self, settings: Settings, which=None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            parts = (which or self.status)(settings)
            if all(p.healthy for p in parts):
                return
            dead = [p for p in parts if p.managed and not p.running]
            if dead or time.monotonic() > deadline:
                names = ", ".join(p.name for p in parts if not p.healthy)
                raise StackError(
                    f"{names} did not become healthy; see {self.home / 'logs'}"
                )
            time.sleep(0.5)

    # -- status --------------------------------------------------------------
    def status(self, settings: Settings | None = None) -> list[PartStatus]:
        settings = settings or _with_record(self.settings, self._record())
        return self._core_parts(settings) + self._worker_status(settings)

    def _graph_status(self, settings: Settings) -> PartStatus:
        from kg.graph import ping_graph

        managed = not self.graph_external
        pid = self._pid(settings.graph_server) if managed else None
        running = pid_alive(pid) if managed else True
        healthy, detail = False, ""
        if settings.graph_uri and running:
            healthy, detail = ping_graph(settings)
        return PartStatus("graph", managed, pid, running, healthy, redact_url(settings.graph_uri) or "-", detail)

    def _redis_status(self, settings: Settings) -> PartStatus:
        from workers.connect import ping_redis

        managed = not self.redis_external
        pid = self._pid("redis") if managed else None
        running = pid_alive(pid) if managed else True
        healthy, detail = False, ""
        if settings.redis_url and running:
            healthy, detail = ping_redis(settings.redis_url, appendonly=True)
        return PartStatus("redis", managed, pid, running, healthy, redact_url(settings.redis_url) or "-", detail)

    # -- down ----------------------------------------------------------------
    def down(self, progress=print, timeout_s: float = 30.0) -> None:
        """Stop what ``up`` started (SIGTERM, then SIGKILL after ``timeout_s``); workers first."""
        self.stop_workers(progress, timeout_s)
        for name in ("redis", *GRAPH_SERVERS):
            pid = self._pid(name)
            if not pid_alive(pid):
                progress(f"{name}: not running")
                continue
            progress(f"stopping {name} (pid {pid})")
            _terminate(pid, timeout_s)
            (self.home / "run" / f"{name}.pid").unlink(missing_ok=True)


    def stop_workers(self, progress=print, timeout_s: float = 30.0) -> None:
        """Warm-stop the workers and beat that ``up`` started (also any left from an earlier
        configuration)."""
        run = self.home / "run"
        names = sorted(p.stem for p in run.glob("*.pid") if p.stem.startswith("worker-") or p.stem == "beat") \
            if run.exists() else []
        for name in names:
            pid = self._pid(name)
            if pid_alive(pid):
                progress(f"stopping {name} (pid {pid})")
                _terminate(pid, timeout_s)
            (run / f"{name}.pid").unlink(missing_ok=True)

    def start_workers(self, progress=print) -> None:
        """Start the configured workers and beat that are not running, and wait for them."""
        settings = _with_record(self.settings, self._record())
        self._start_workers(progress)
        self._wait_healthy(settings)


def _terminate(pid: int, timeout_s: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:  # reap if it is our child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _reuse_port(uri: str | None) -> int:
    """The recorded port when it is free (clients that cached it find the restarted part), else a new one."""
    try:
        port = int((uri or "").rsplit(":", 1)[1].split("/", 1)[0])
    except (IndexError, ValueError):
        port = 0
    return port if port and bindable(port) else free_port()


def _with_record(settings: Settings, record: dict) -> Settings:
    """Settings with the recorded stack filled in where the environment is silent."""
    from dataclasses import replace

    return replace(
        settings,
        graph_uri=settings.graph_uri if settings.graph_external else record.get("graph_uri", settings.graph_uri),
        graph_password=settings.graph_password if settings.graph_external else record.get("graph_password", settings.graph_password),
        redis_url=settings.redis_url if settings.redis_external else record.get("redis_url", settings.redis_url),
    )
