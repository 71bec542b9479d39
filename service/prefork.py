"""``kg serve --processes N``: a preloading supervisor that forks the serving processes.

A new Python interpreter needs ~470 ms before it can answer from restored state (numpy alone
~110 ms), so a restart of the HTTP service cannot meet "first answer under 50 ms" by starting
one. Like ``gunicorn --preload`` or Celery's prefork pool, the supervisor pays interpreter start
and imports once, binds the listening socket once, and forks the serving processes; when one
dies it forks a replacement, which only has to connect and restore (~25 ms). Connections that
arrive meanwhile wait in the socket's backlog instead of being refused.

Each serving process runs uvicorn (:mod:`service.http`) on the inherited socket. ``gunicorn
--preload`` with uvicorn workers would do the same job; this supervisor stays because it is
small, tested (crash loop, orphaned children, drain on SIGTERM) and needs no further dependency.

Fork safety: before forking, the supervisor opens no Redis or graph connection and starts no
thread; each child builds its own :class:`service.root.Session` (its own connections).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import uvicorn

from kg.config import Settings
from service.http import DispatchApp, config, listen, openapi_document, url_of

MIN_UPTIME_S = 1.0  # a serving process that dies sooner counts towards a crash loop
CRASH_LOOP = 5  # that many quick deaths in a row stop the supervisor
STOP_TIMEOUT_S = 15.0  # SIGTERM, then SIGKILL after this long
DRAIN_TIMEOUT_S = 10.0  # a stopping child lets requests in flight finish for up to this long
_WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def say(message: str) -> None:
    print(f"kg serve: {message}", file=sys.stderr, flush=True)


def exit_description(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class CrashLoop(RuntimeError):
    """Serving processes keep dying right after they start: restarting them again would spin."""


class Supervisor:
    """Forks ``processes`` children that each run ``child()`` (its return value is the exit
    status) and keeps that many alive until SIGTERM or SIGINT.

    The supervisor blocks SIGCHLD, SIGTERM and SIGINT and takes them with ``sigtimedwait``, so a
    signal never interrupts it half way through a fork or a reap.
    """

    def __init__(self, processes: int, child: Callable[[], int], *, min_uptime_s: float = MIN_UPTIME_S,
                 crash_loop: int = CRASH_LOOP, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        if processes < 1:
            raise ValueError("processes: must be at least 1")
        self.processes = processes
        self.child = child
        self.min_uptime_s = min_uptime_s
        self.crash_loop = crash_loop
        self.stop_timeout_s = stop_timeout_s
        self.children: dict[int, float] = {}  # pid -> monotonic start
        self._quick_deaths = 0
        self._mask: set[signal.Signals] = set()  # the signal mask to give the children

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (returns 0); raises :class:`CrashLoop` after stopping the
        children if they keep dying within ``min_uptime_s``."""
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        try:
            for _ in range(self.processes):
                self._spawn()
            say("serving processes " + ", ".join(map(str, self.children)))
            while True:
                info = signal.sigtimedwait(_WATCHED, 1.0)
                if info is not None and info.si_signo != signal.SIGCHLD:
                    say(f"{signal.Signals(info.si_signo).name} received; stopping {len(self.children)} "
                        "serving process(es)")
                    self.stop()
                    return 0
                for pid, status, started in self._reap():
                    self._replace(pid, status, started)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _replace(self, pid: int, status: int, started: float) -> None:
        uptime = time.monotonic() - started
        self._quick_deaths = self._quick_deaths + 1 if uptime < self.min_uptime_s else 0
        if self._quick_deaths >= self.crash_loop:
            self.stop()
            raise CrashLoop(f"{self._quick_deaths} serving processes in a row died within {self.min_uptime_s:g} s "
                            f"of starting (the last, {pid}: {exit_description(status)}); not starting another")
        new = self._spawn()
        say(f"serving process {pid} died ({exit_description(status)}) after {uptime:.1f} s; started {new} in its place")

    def _spawn(self) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the supervisor's stack
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
                code = self.child()
            except BaseException:  # noqa: BLE001 - reported, then the supervisor replaces us
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = time.monotonic()
        return pid

    def _reap(self) -> list[tuple[int, int, float]]:
        """Children that exited since the last call (pid, wait status, start), no longer in
        ``children``: a reaped pid must leave it at once, or a crash loop found at the first of
        several deaths reaped together made ``stop`` wait for children already gone (15 s, then
        ``ChildProcessError`` from ``waitpid``)."""
        out = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.children:
                out.append((pid, status, self.children.pop(pid)))
        return out

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL those still there after ``stop_timeout_s`` (or at a second
        SIGTERM/SIGINT), and reap them all."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while self.children:
            self._reap()
            left = deadline - time.monotonic()
            if not self.children:
                break
            if left <= 0:
                say(f"{len(self.children)} serving process(es) still running after {self.stop_timeout_s:g} s; "
                    "killing them")
                break
            info = signal.sigtimedwait(_WATCHED, left)
            if info is not None and info.si_signo != signal.SIGCHLD:
                say("stopping now")
                break
        self._signal_all(signal.SIGKILL)
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # reaped elsewhere already
                pass
            self.children.pop(pid)

    def _signal_all(self, sig: int) -> None:
        for pid in self.children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def preload() -> None:
    """Import everything a serving process needs, so that a fork pays none of it; open nothing.

    Graph verbs import the neo4j driver on first use and updates import Celery to publish their
    drain: both are imported here too.
    """
    import neo4j  # noqa: F401
    import numpy  # noqa: F401
    import pydantic  # noqa: F401
    import redis  # noqa: F401
    import uvicorn.lifespan.off  # noqa: F401

    import kg.graph  # noqa: F401
    import kg.ingest  # noqa: F401
    import kg.store  # noqa: F401
    import workers.app  # noqa: F401  (Celery)
    import workers.heartbeat  # noqa: F401
    import service.http  # noqa: F401  (the verbs, the session, uvicorn)
    import workers.subgraph  # noqa: F401

    if threading.active_count() != 1:  # a thread would not survive the fork, nor what it holds
        raise RuntimeError("kg serve: a thread was started before forking: "
                           + ", ".join(t.name for t in threading.enumerate()))


def serve(settings: Settings, host: str | None = None, port: int | None = None, processes: int = 1) -> int:
    """``kg serve``: bind, preload, fork ``processes`` serving processes and supervise them.

    Returns 0 after SIGTERM/SIGINT; raises OSError if it cannot listen and :class:`CrashLoop`.
    """
    ws = settings.workers
    sock = listen(host or ws.http_host, ws.http_port if port is None else port)
    try:
        preload()
        openapi = openapi_document(bool(ws.api_key))
        gc.collect()
        gc.freeze()  # the children's collections skip what the supervisor built (~5 ms off a first answer)
        url = url_of(sock.getsockname())
        print(f"kg: dispatch on {url}/v1/dispatch (OpenAPI at {url}/openapi.json)"
              + ("; API key required" if ws.api_key else "")
              + f"; {processes} serving process{'es' if processes > 1 else ''}", flush=True)
        parent = os.getpid()
        return Supervisor(processes, lambda: serve_child(settings, sock, parent, openapi)).run()
    finally:
        sock.close()


class _Served(uvicorn.Server):
    """A serving process's uvicorn server: stops on SIGTERM (requests in flight may finish, for
    up to :data:`DRAIN_TIMEOUT_S`) or when its supervisor is gone. It leaves SIGINT alone: Ctrl-C
    reaches the supervisor, which stops the serving processes in order."""

    parent = 0

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGTERM, self.handle_exit)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    async def on_tick(self, counter: int) -> bool:  # every 0.1 s
        if not self.should_exit and os.getppid() != self.parent:  # orphaned: do not hold the port
            say(f"serving process {os.getpid()}: the supervisor is gone; stopping")
            self.should_exit = True
        return await super().on_tick(counter)


def serve_child(settings: Settings, sock: socket.socket, parent: int, openapi: dict[str, Any]) -> int:
    """One serving process: its own Session and uvicorn on the inherited socket, until SIGTERM
    or until its supervisor is gone."""
    with DispatchApp.opened(settings, openapi) as app:
        server = _Served(config(app, DRAIN_TIMEOUT_S))
        server.parent = parent
        server.run(sockets=[sock])
    return 0
