"""Local processes and ports: a free loopback port, and whether a pid is alive.

Used by ``kg up`` (:mod:`service.stack`), the workers' lock takeover (:mod:`workers.drain`), and the
process helpers of the tests and benchmarks. Standard library only.

>>> import os
>>> pid_alive(os.getpid()), pid_alive(None)
(True, False)
>>> 1024 <= free_port() < 65536
True
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A port from the ephemeral range can be taken as the local end of some client's
    connection while the server that had it restarts; below the range, only servers
    bind, so ``kg up`` can bring a restarted part back on its recorded port.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        if bindable(port):
            return port
    with socket.socket() as sock:  # a crowded range: any free port will do
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        # as the servers do: connections of a killed server in TIME_WAIT do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pid_alive(pid: int | None) -> bool:
    """Running on this host, and not a zombie (also used by the workers' lock takeover)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive, but a zombie thread-group leader whose other threads are
        # still exiting is: a killed JVM holds its sockets until its last thread is gone
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(") ", 1)[1][0] != "Z":
                return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return True
