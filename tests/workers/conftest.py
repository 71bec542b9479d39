"""Real processes for the worker tests: an isolated redis-server (AOF on) and Celery workers.

Each test gets its own redis-server on a free port with its own data directory, so restarts and
kills stay local. Workers are ``celery -A workers.app worker`` subprocesses in their own process
group (so ``kill -9`` takes the pool children too), configured through the environment with short
time limits and visibility timeout (the process helpers are the benchmarks', :mod:`bench._procs`).
Tests that need the graph use the session stack of ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._procs import RedisServer, Worker, worker_env
from kg.config import Settings

collect_ignore = ["fault_worker.py"]  # a worker's app module: imported by its worker only


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    return worker_env(redis_server.url, tmp_path / "home")


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path):
    """``workers(name)`` starts a worker; all are stopped at the end (logs kept in tmp_path)."""
    started: list[Worker] = []

    def start(name: str = "w1", wait: bool = True, concurrency: int = 1, app: str = "workers.app",
              **extra: str) -> Worker:
        w = Worker(dict(env, **extra), name, tmp_path, concurrency, app=app)
        started.append(w)
        return w.start(wait)

    yield start
    for w in started:
        if w.proc is not None and w.proc.poll() is None:
            w.kill9()


@pytest.fixture
def learn_session(settings: Settings):
    from service.root import Session

    with Session(settings) as s:
        yield s
