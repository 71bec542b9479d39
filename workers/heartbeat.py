"""Liveness: a worker or beat process refreshes ``kg:workers:<name>`` every few seconds, and a
reader counts it live only if that heartbeat reached the Redis server running now, recently.

``kg status``, ``kg up`` and the ``health`` verb read them through :func:`alive`. A key alone
proves nothing: after a ``kill -9`` of redis-server the AOF brings back the heartbeats of
processes that may be dead, stopped, or still retrying a port nobody listens on. So each beat
records the ``run_id`` of the server instance it was written to (a new random id at every start)
and the time on that server's clock (``INFO server`` gives both in one round trip); a heartbeat is
live when it was written to the current instance within :data:`FRESH_S` by its clock. No clocks
of two hosts are compared, and a beat replayed from the AOF is never taken for a live one. The
thread has its own Redis client and never touches task state.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import redis

from workers.connect import DRIVER_INFO

PREFIX = "kg:workers:"
EVERY_S = 3.0
FRESH_S = 3 * EVERY_S
"""A heartbeat older than this (by the Redis server's clock) is not live: two beats missed."""
TTL_S = 12
"""The key's expiry, only to clean up after a process that stopped without deleting it."""


def server_clock(client: redis.Redis) -> tuple[str, int]:
    """(``run_id``, time in ms) of the Redis server instance the client talks to now."""
    info = client.info("server")
    return str(info["run_id"]), int(info["server_time_usec"]) // 1000


class Heartbeat(threading.Thread):
    def __init__(self, redis_url: str, name: str, role: str) -> None:
        super().__init__(name=f"kg-heartbeat-{role}", daemon=True)
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5,
                                           driver_info=DRIVER_INFO)
        self.key = PREFIX + name
        self.payload = {"name": name, "role": role, "pid": os.getpid(), "host": socket.gethostname(),
                        "started_ms": time.time_ns() // 1_000_000}
        self._stop_event = threading.Event()

    def beat(self) -> None:
        # if the server restarts between these two commands, the beat names the old instance and
        # counts as not live until the next one: late, never wrong
        run_id, now_ms = server_clock(self.client)
        body = dict(self.payload, seen_ms=now_ms, redis_run_id=run_id)
        self.client.set(self.key, json.dumps(body), ex=TTL_S)

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except redis.RedisError:
                pass  # Redis is down; the beat goes stale and status says so
            if self._stop_event.wait(EVERY_S):
                return

    def stop(self) -> None:
        self._stop_event.set()
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass


def alive(client: redis.Redis) -> list[dict]:
    """Every process whose last heartbeat reached this Redis instance within :data:`FRESH_S`
    (by its clock), as the process wrote it (``seen_ms`` on the server's clock)."""
    run_id, now_ms = server_clock(client)
    keys = sorted(client.scan_iter(match=PREFIX + "*", count=100))
    values = client.mget(keys) if keys else []
    beats = []
    for raw in values:
        beat = json.loads(raw) if raw else None
        if beat and beat.pop("redis_run_id", None) == run_id and now_ms - beat["seen_ms"] <= FRESH_S * 1000:
            beats.append(beat)
    return beats


def node_name(name: str, home: Path) -> str:
    """The Celery node name of a worker or beat of the stack at ``home`` (``kg-<name>-<tag>@host``)."""
    import hashlib

    tag = hashlib.sha1(str(home).encode()).hexdigest()[:6]
    return f"kg-{name}-{tag}@{socket.gethostname()}"
