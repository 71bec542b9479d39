"""Liveness keys: a worker or beat process refreshes ``kg:workers:<name>`` every few seconds.

``kg status`` and the ``health`` verb read them; a key that expired means the process is gone or
stuck. The thread has its own Redis client and never touches task state.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import redis

from workers.connect import DRIVER_INFO

PREFIX = "kg:workers:"
EVERY_S = 3.0
TTL_S = 12


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
        body = dict(self.payload, seen_ms=time.time_ns() // 1_000_000)
        self.client.set(self.key, json.dumps(body), ex=TTL_S)

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except redis.RedisError:
                pass  # Redis is down; the key expires and status says so
            if self._stop_event.wait(EVERY_S):
                return

    def stop(self) -> None:
        self._stop_event.set()
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass


def alive(client: redis.Redis) -> list[dict]:
    """Every process whose heartbeat has not expired."""
    keys = sorted(client.scan_iter(match=PREFIX + "*", count=100))
    values = client.mget(keys) if keys else []
    return [json.loads(v) for v in values if v]
