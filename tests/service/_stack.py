"""Helpers of the tests that run their own local stack (``kg up`` in a KG_HOME of their own)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kg.procs import pid_alive

PASSED_THROUGH = ("KG_GRAPH_SERVER", "KG_GRAPH_HEAP", "KG_GRAPH_PAGECACHE")
"""The caller's choice of graph server and its memory; every other KG_ setting is the test's."""


def kg(env, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def clean_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_") or k in PASSED_THROUGH}
    env["KG_HOME"] = str(home)
    return env


def wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    """Until a killed process (all its threads) is gone."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)
