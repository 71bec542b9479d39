"""Fresh reads: a state's version asked of Redis while the read computes on its cached core.

A read must never answer from a state older than the last acknowledged update, so every read
asks Redis for the state's version. That GET is sent *after* the read began, so Redis answers it
after every update acknowledged before the read began; the answer is kept only if it was computed
on exactly that version, and otherwise computed again on the newly loaded state. Because the
question and the answer are two halves (:meth:`Probe.send`, :meth:`Probe.receive`), the round
trip runs while the read computes instead of before it: a warm ``route`` costs about the larger of
the two, not their sum.

A :class:`Probe` is one dedicated connection (made by redis-py's own connection class, so TLS,
passwords, unix sockets and database numbers behave as for every other client), used by one
thread at a time: :class:`Probes` lends them out and takes them back.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

TRANSIENT = (redis.ConnectionError, redis.TimeoutError)


class Probe:
    """One connection that asks for version keys, in two halves."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.conn = pool.connection_class(**pool.connection_kwargs)
        self._packed: dict[str, Any] = {}

    def send(self, key: str) -> None:
        packed = self._packed.get(key)
        if packed is None:
            packed = self._packed[key] = self.conn.pack_command("GET", key)
        self.conn.send_packed_command(packed, check_health=False)

    def receive(self) -> int:
        return int(self.conn.read_response() or 0)

    def get(self, key: str) -> int:
        """Send and receive; a connection that failed is dropped and made again once (after a
        Redis restart the first attempt finds the old socket closed)."""
        try:
            self.send(key)
            return self.receive()
        except TRANSIENT:
            self.conn.disconnect()
            self.send(key)
            return self.receive()

    def close(self) -> None:
        self.conn.disconnect()


class Probes:
    """Probes lent to one thread at a time (a LIFO, so a busy thread keeps reusing a warm one)."""

    def __init__(self, pool: redis.ConnectionPool, keep: int = 16) -> None:
        self.pool = pool
        self.keep = keep
        self._idle: list[Probe] = []
        self._lock = threading.Lock()

    def take(self) -> Probe:
        try:
            return self._idle.pop()  # atomic under the GIL
        except IndexError:
            return Probe(self.pool)

    def give(self, probe: Probe) -> None:
        if len(self._idle) < self.keep:  # (a race may keep one or two more: harmless)
            self._idle.append(probe)
            return
        probe.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for probe in idle:
            probe.close()
